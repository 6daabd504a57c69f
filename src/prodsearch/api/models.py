"""Request bodies: strict types (no silent coercion), unknown fields rejected."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from prodsearch.search.results import (
    MAX_EF,
    MAX_LIMIT,
    MAX_OFFSET,
    MAX_QUERY_CHARS,
    MIN_EF,
    SearchOptions,
)


class SemanticRequest(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")

    query: str = Field(min_length=1, max_length=MAX_QUERY_CHARS, description="Search text.")
    limit: int = Field(default=20, ge=1, le=MAX_LIMIT)
    offset: int = Field(default=0, ge=0, le=MAX_OFFSET)
    ef_search: int | None = Field(
        default=None,
        ge=MIN_EF,
        le=MAX_EF,
        description="HNSW candidate list for this request (default PRODSEARCH_EF_SEARCH): "
        "higher finds more of the exact neighbours, slower.",
    )
    exact: bool = Field(
        default=False, description="Brute force: score every product exactly (no index)."
    )
    explain: bool = Field(
        default=False,
        description="Add each result's score parts (semantic rank and distance, lexical rank, "
        "code match, vehicle boost) and the query analysis.",
    )
    facets: bool = Field(
        default=False, description="Add category / brand counts over the candidate set."
    )

    def options(self) -> SearchOptions:
        return SearchOptions(
            limit=self.limit,
            offset=self.offset,
            filters=getattr(self, "filters", None),
            ef_search=self.ef_search,
            exact=self.exact,
            explain=self.explain,
            facets=self.facets,
        )


class FilteredRequest(SemanticRequest):
    filters: dict[str, Any] = Field(
        default_factory=dict,
        description="category, brand (string or list), price_min, price_max, in_stock.",
    )


class HybridRequest(FilteredRequest):
    rrf_k: int | None = Field(default=None, ge=1, le=1000, description="RRF k (default 60).")
