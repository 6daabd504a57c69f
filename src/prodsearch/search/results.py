"""What a search takes and returns: options, validation, the response and its rows."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

MAX_QUERY_CHARS = 512
MAX_LIMIT = 100
MAX_OFFSET = 10_000


class SearchError(ValueError):
    """Bad search input (HTTP 422) or a missing product (``not_found`` → HTTP 404)."""

    def __init__(self, message: str, not_found: bool = False) -> None:
        super().__init__(message)
        self.not_found = not_found


@dataclass
class SearchResponse:
    results: list[dict[str, Any]]
    execution_time_ms: float
    timings: dict[str, Any] = field(default_factory=dict)
    facets: dict[str, list[dict[str, Any]]] | None = None
    explain: dict[str, Any] | None = None

    @property
    def count(self) -> int:
        return len(self.results)

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "results": self.results,
            "count": self.count,
            "execution_time_ms": self.execution_time_ms,
            "timings": self.timings,
        }
        if self.facets is not None:
            out["facets"] = self.facets
        if self.explain is not None:
            out["explain"] = self.explain
        return out


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def normalise_query(query: Any) -> str:
    if not isinstance(query, str):
        raise SearchError("query must be a string")
    # control characters (NUL included, which PostgreSQL text cannot hold) separate words
    text = " ".join(_CONTROL.sub(" ", query).split())
    if not text:
        raise SearchError("query is empty")
    if len(text) > MAX_QUERY_CHARS:
        raise SearchError(f"query is longer than {MAX_QUERY_CHARS} characters ({len(text)})")
    return text


def check_page(limit: Any, offset: Any) -> None:
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
        raise SearchError(f"limit must be an integer from 1 to {MAX_LIMIT}")
    if isinstance(offset, bool) or not isinstance(offset, int) or not 0 <= offset <= MAX_OFFSET:
        raise SearchError(f"offset must be an integer from 0 to {MAX_OFFSET}")


PARTS = (
    "distance",
    "semantic_rank",
    "lexical_rank",
    "lexical_score",
    "code_match",
    "vehicle_match",
)
MIN_EF, MAX_EF = 10, 1000


@dataclass
class SearchOptions:
    """Per-request knobs beside the query, page and filters (all validated)."""

    limit: int = 20  # results on the page
    offset: int = 0  # results skipped before it
    filters: dict[str, Any] | None = None  # see search.filters
    ef_search: int | None = None  # hnsw.ef_search for this request
    exact: bool = False  # brute force: score every (matching) product exactly
    explain: bool = False  # each result's score parts, and the query analysis
    facets: bool = False  # category / brand counts over the candidate set

    def check(self) -> None:
        check_page(self.limit, self.offset)
        if self.filters is not None and not isinstance(self.filters, dict):
            raise SearchError("filters must be an object of filter keys")
        ef = self.ef_search
        if ef is not None and (
            isinstance(ef, bool) or not isinstance(ef, int) or not MIN_EF <= ef <= MAX_EF
        ):
            raise SearchError(f"ef_search must be an integer from {MIN_EF} to {MAX_EF}")
        for name in ("exact", "explain", "facets"):
            if not isinstance(getattr(self, name), bool):
                raise SearchError(f"{name} must be true or false")


def shape_row(row: dict[str, Any], explain: bool) -> dict[str, Any]:
    out = {k: v for k, v in row.items() if k not in PARTS}
    if isinstance(out.get("price"), Decimal):
        out["price"] = float(out["price"])
    out["score"] = round(float(out["score"]), 6)
    if explain:
        parts = {k: row[k] for k in PARTS if k in row}
        if parts.get("distance") is not None:
            parts["distance"] = round(float(parts["distance"]), 6)
        if parts.get("lexical_score") is not None:
            parts["lexical_score"] = round(float(parts["lexical_score"]), 6)
        out["explain"] = parts
    return out


def facet_counts(rows: list[dict[str, Any]], keys: list[str]) -> dict[str, list[dict[str, Any]]]:
    """Value counts of the given fields over ``rows``, most frequent first."""
    out: dict[str, list[dict[str, Any]]] = {}
    for key in keys:
        counts: dict[str, int] = {}
        for row in rows:
            value = row.get(key)
            if value is not None:
                counts[str(value)] = counts.get(str(value), 0) + 1
        ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
        out[key] = [{"value": v, "count": n} for v, n in ranked]
    return out
