"""Request bodies: strict types (no silent coercion), unknown fields rejected."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from prodsearch.config import RRF_K_MAX, RRF_K_MIN
from prodsearch.search.results import (
    MAX_EF,
    MAX_LIMIT,
    MAX_OFFSET,
    MAX_QUERY_CHARS,
    MIN_EF,
    SearchOptions,
)


def _whole_number(value: Any) -> Any:
    """JSON Schema's ``integer`` includes 20.0: accept a float without a fraction as the
    integer it is (strict mode still refuses 20.5, "20" and true)."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


# a character that is neither whitespace (str.isspace) nor a control character
VISIBLE = r"[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]"
WHOLE = BeforeValidator(_whole_number)  # after any bounds, or they leave the JSON schema
Whole = Annotated[int, WHOLE]


def _unpaired_surrogate(value: Any) -> bool:
    """JSON may escape half a UTF-16 pair ("\\udafc"): text no database can store."""
    if isinstance(value, str):
        return any("\ud800" <= ch <= "\udfff" for ch in value)
    if isinstance(value, dict):
        return any(_unpaired_surrogate(k) or _unpaired_surrogate(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_unpaired_surrogate(v) for v in value)
    return False


class SemanticRequest(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _valid_text(cls, data: Any) -> Any:
        if _unpaired_surrogate(data):
            raise ValueError(
                "the body holds text that is not valid Unicode (an unpaired surrogate)"
            )
        return data

    query: str = Field(
        min_length=1,
        max_length=MAX_QUERY_CHARS,
        pattern=VISIBLE,
        description="Search text: at least one character that is not a space or a control.",
    )
    limit: Whole = Field(default=20, ge=1, le=MAX_LIMIT)
    offset: Whole = Field(default=0, ge=0, le=MAX_OFFSET)
    ef_search: Annotated[int, Field(ge=MIN_EF, le=MAX_EF), WHOLE] | None = Field(
        default=None,
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
        default=False,
        description="Add category / brand counts; facets_over says what they count: every "
        "matching product, or the top candidates ranked.",
    )

    understand: bool = Field(
        default=True,
        description="Find the constraints the query states (a price, a side, an engine, a "
        "brand, a vehicle), take them out of its text and apply them; the response's "
        "understood field lists them, relaxed those the page could not keep. Explicit "
        "filters win over understood ones.",
    )

    ignore: list[Literal["price", "vehicle", "position", "engine", "brand"]] = Field(
        default_factory=list,
        max_length=5,
        description="Understood constraints not to apply (a chip the shopper removed); "
        "their words stay in the query's text.",
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
            understand=self.understand,
            ignore=tuple(self.ignore),
        )


class FilteredRequest(SemanticRequest):
    filters: dict[str, Any] = Field(
        default_factory=dict,
        description="category, brand (string or list), price_min, price_max, in_stock.",
    )


class HybridRequest(FilteredRequest):
    rrf_k: Annotated[int, Field(ge=RRF_K_MIN, le=RRF_K_MAX), WHOLE] | None = Field(
        default=None, description="RRF k (default: the server's PRODSEARCH_RRF_K)."
    )


# Response bodies: documented in /openapi.json (the fuzz test checks every response
# against them); the routes render JSON directly, so they cost nothing per request.


class ErrorBody(BaseModel):
    """Every error: one readable line, plus the validation details for a 422."""

    error: str
    detail: list[dict[str, Any]] | None = None


class ResultBody(BaseModel):
    """One product: its id and score, and the source's display and filter columns."""

    model_config = ConfigDict(extra="allow")

    product_id: int
    score: float


class SearchBody(BaseModel):
    results: list[ResultBody]
    count: int
    execution_time_ms: float
    timings: dict[str, Any]
    facets: dict[str, Any] | None = None
    explain: dict[str, Any] | None = None
    query_language: str | None = None
    facets_over: dict[str, Any] | None = None
    understood: dict[str, Any] | None = None
    relaxed: list[str] | None = None
    strict_matches: int | None = None
    suggestions: list[dict[str, Any]] | None = None  # only when nothing was found


class SuggestionBody(BaseModel):
    text: str
    kind: str  # type | brand | vehicle | type_brand | type_vehicle
    lang: str | None
    products: int


class SuggestBody(BaseModel):
    query: str
    suggestions: list[SuggestionBody]
    corrected: bool
    execution_time_ms: float


class FiltersBody(BaseModel):
    keys: dict[str, str]
    values: dict[str, list[Any]]


class HealthBody(BaseModel):
    model_config = ConfigDict(extra="allow")

    status: str
    database: str


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """The ``responses`` entry documenting these error statuses."""
    return {code: {"model": ErrorBody} for code in codes}
