"""A planned search (:class:`Request`), shared by planning, execution and shaping."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from psycopg import sql

from prodsearch.search import queries
from prodsearch.search.filterplan import FilterPlan, Strategy
from prodsearch.search.lexquery import LexicalQuery
from prodsearch.search.queries import SqlParams
from prodsearch.search.results import SearchOptions


@dataclass
class Request:
    """A validated search and its plan: the filter, the distance expression, the query's
    analysis and vector. Execution may change its plan (``order``/``strategy``/``widened``)
    and records what ran."""

    started: float
    text: str
    limit: int
    offset: int
    opts: SearchOptions
    where: sql.Composable
    fparams: SqlParams
    order: sql.Composable
    strategy: Strategy
    vehicles: list[str]
    embed_s: float = 0.0
    cached: bool | None = None
    vector: np.ndarray | None = None  # the query's vector, None without a query text
    lexical: LexicalQuery | None = None
    semantic_text: str = ""
    widened: bool = False  # the index missed (search.probes): searched again, wider
    language: str | None = None  # the query's language, when it says (search.language)
    plan: FilterPlan | None = None  # a filtered query's plan (search.filterplan)
    mask: sql.Composable = field(default_factory=lambda: queries.NO_MASK)  # constraints met
    mask_names: tuple[str, ...] = ()  # the constraint of each bit of the mask
    mask_params: SqlParams = field(default_factory=dict)

    @property
    def k(self) -> int:
        return self.limit + self.offset

    def go_exact(self, exact_distance: sql.Composable) -> None:
        """Score every (matching) product instead of walking the index."""
        self.order, self.strategy = exact_distance, "exact"
