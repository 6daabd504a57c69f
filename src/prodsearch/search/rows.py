"""The row every search statement returns, typed: one :class:`Candidate` per product.

The statements of :mod:`prodsearch.search.queries` (``nearest`` and ``hybrid``) select the
display columns (:data:`DISPLAY`, plus the snippet columns) and
each leg's evidence under these names; psycopg builds a candidate from each row by column
name (``class_row``), so a column the class does not name is an error at the first search,
not a silent ``None``. The legs a statement does not have keep their defaults.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Literal, TypeGuard, get_args

# the columns a result shows; facet counts are taken over some of them (search.service)
DisplayColumn = Literal["name", "polish_name", "category", "brand", "price", "in_stock"]
DISPLAY: tuple[DisplayColumn, ...] = get_args(DisplayColumn)


def is_display(name: str) -> TypeGuard[DisplayColumn]:
    return name in DISPLAY


@dataclass(frozen=True, slots=True)
class Found:
    """What a search's SQL returned: its candidates and the seconds it took."""

    rows: list[Candidate]
    seconds: float


@dataclass(frozen=True, slots=True)
class Candidate:
    """One product a search found: what shoppers see and what each leg said about it."""

    product_id: int
    # the display columns (NULL where the source has no such column)
    name: str | None = None
    polish_name: str | None = None
    category: str | None = None
    brand: str | None = None
    price: Decimal | float | int | None = None
    in_stock: bool | None = None
    # read for the description snippet (search.highlight)
    description: str | None = None
    polish_description: str | None = None
    # the legs' evidence
    score: float | None = None  # nearest: by SQL; hybrid: by the fusion (search.fusion)
    distance: float | None = None  # cosine distance, semantic leg
    semantic_rank: int | None = None
    lexical_rank: int | None = None  # hybrid: rank in the full-text leg
    lexical_score: float | None = None  # hybrid: the full-text leg's BM25 score
    lexical_loose: bool | None = None  # hybrid: the leg matched any word, not every word
    code_match: bool | None = None  # hybrid: an exact SKU / part number
    vehicle_match: int | None = None  # 1 when the product fits a vehicle the query names
    constraint_mask: int | None = None  # bit i: the request's i-th understood constraint met

    def facet_value(self, column: DisplayColumn) -> str | None:
        """The value a facet count groups this candidate under (None: not counted)."""
        value = getattr(self, column)
        return None if value is None else str(value)
