"""What a search takes and returns: options, validation, the response and its rows."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from prodsearch.errors import SearchError
from prodsearch.jsonvalue import JsonObject
from prodsearch.search.constraints import CONSTRAINTS
from prodsearch.search.filterplan import Strategy
from prodsearch.search.filters import Filters
from prodsearch.search.highlight import Highlight, highlight
from prodsearch.search.rows import Candidate, DisplayColumn

MAX_QUERY_CHARS = 512
MAX_LIMIT = 100
MAX_OFFSET = 10_000


@dataclass(frozen=True, slots=True)
class ScoreParts:
    """Why a result ranks where it does (``explain``): the legs it came from."""

    distance: float | None = None  # cosine distance (the index's precision)
    semantic_rank: int | None = None
    lexical_rank: int | None = None  # hybrid only
    lexical_score: float | None = None  # hybrid only
    code_match: bool | None = None  # hybrid only: an exact SKU / part number
    vehicle_match: int | None = None  # 1 when the product fits a vehicle the query names

    def as_dict(self) -> JsonObject:
        out: JsonObject = {"distance": self.distance, "semantic_rank": self.semantic_rank}
        if self.lexical_rank is not None or self.code_match is not None:
            out.update(
                lexical_rank=self.lexical_rank,
                lexical_score=self.lexical_score,
                code_match=self.code_match,
            )
        out["vehicle_match"] = self.vehicle_match
        return out


@dataclass(frozen=True, slots=True)
class SearchHit:
    """One result: the product as shoppers see it, its score, and (explain) its parts."""

    product_id: int
    name: str | None
    polish_name: str | None
    category: str | None
    brand: str | None
    price: float | None
    in_stock: bool | None
    score: float
    explain: ScoreParts | None = None
    title: str | None = None  # the name in the query's language (Polish when it has one)
    constraints_met: tuple[str, ...] | None = None  # of the understood ones (None: none)
    highlight: Highlight | None = None  # the words that match the query

    def as_dict(self) -> JsonObject:
        out: JsonObject = {
            "product_id": self.product_id,
            "title": self.title if self.title is not None else self.name,
            "name": self.name,
            "polish_name": self.polish_name,
            "category": self.category,
            "brand": self.brand,
            "price": self.price,
            "in_stock": self.in_stock,
            "score": self.score,
        }
        if self.constraints_met is not None:
            out["constraints_met"] = list(self.constraints_met)
        if self.highlight is not None:
            out["highlight"] = self.highlight.as_dict()
        if self.explain is not None:
            out["explain"] = self.explain.as_dict()
        return out


@dataclass(frozen=True, slots=True)
class SearchTimings:
    embed_ms: float  # the query's embedding (0 when cached or none)
    search_ms: float  # the SQL round trip
    strategy: Strategy  # the HNSW index, or every matching product scored
    cached_embedding: bool | None = None  # None: no query text (similar)
    widened: bool = False  # the index missed (search.probes): searched again, wider
    filter_matches: int | None = None  # a filter: the planner's estimate of its products
    neighbourhood_pass: float | None = None  # its pass rate near the query (filterplan)

    def as_dict(self) -> JsonObject:
        out: JsonObject = {
            "embed_ms": self.embed_ms,
            "search_ms": self.search_ms,
            "strategy": self.strategy,
        }
        if self.widened:
            out["widened"] = True
        if self.cached_embedding is not None:
            out["cached_embedding"] = self.cached_embedding
        if self.filter_matches is not None:
            out["filter_matches"] = self.filter_matches
        if self.neighbourhood_pass is not None:
            out["neighbourhood_pass"] = self.neighbourhood_pass
        return out


@dataclass(frozen=True, slots=True)
class QueryExplain:
    """How the query was understood and how many candidates were ranked."""

    vehicles: list[str]
    candidates: int
    semantic_text: str
    lexical_query: str | None = None  # hybrid: the strict full-text query
    corrected: dict[str, str] | None = None
    dropped: list[str] | None = None
    synonyms: list[str] | None = None
    lexical_weight: float | None = None  # hybrid: the full-text leg's weight in the fusion
    decisions: list[dict[str, str]] | None = None  # words that were constraint or text
    removed: list[str] | None = None  # words that left the text as understood constraints

    def as_dict(self) -> JsonObject:
        out: JsonObject = {
            "vehicles": self.vehicles,
            "candidates": self.candidates,
            "semantic_text": self.semantic_text,
        }
        if self.lexical_query is not None:
            out["lexical_query"] = self.lexical_query
        for key in ("corrected", "dropped", "synonyms", "lexical_weight", "decisions", "removed"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        return out


@dataclass(frozen=True, slots=True)
class FacetCount:
    value: str
    count: int


@dataclass(frozen=True, slots=True)
class FacetScope:
    """What facet counts count: every product the search matches (``all_matches``), or
    only the ranked candidates it looked at (``top_candidates``: a search by similarity
    has no match set, every product is a candidate at some distance)."""

    scope: str  # "all_matches" or "top_candidates"
    products: int  # the products counted over

    def as_dict(self) -> JsonObject:
        return {"scope": self.scope, "products": self.products}


@dataclass
class SearchResponse:
    results: list[SearchHit]
    execution_time_ms: float
    timings: SearchTimings
    facets: dict[str, list[FacetCount]] | None = None
    explain: QueryExplain | None = None
    query_language: str | None = None  # "pl", "en", or None when the query does not say
    facets_over: FacetScope | None = None
    # the constraints understood in the query (search.constraints), and those the page
    # had to relax because too few products meet them all
    understood: JsonObject | None = None
    relaxed: list[str] | None = None
    strict_matches: int | None = None  # results on the page that meet every constraint

    @property
    def count(self) -> int:
        return len(self.results)

    @property
    def ids(self) -> list[int]:
        return [hit.product_id for hit in self.results]

    def as_dict(self) -> JsonObject:
        """The JSON body (the API's response schema)."""
        out: JsonObject = {
            "results": [hit.as_dict() for hit in self.results],
            "count": self.count,
            "execution_time_ms": self.execution_time_ms,
            "timings": self.timings.as_dict(),
        }
        if self.query_language is not None:
            out["query_language"] = self.query_language
        if self.understood is not None:
            out["understood"] = self.understood
            out["relaxed"] = self.relaxed or []
            out["strict_matches"] = self.strict_matches
        if self.facets is not None:
            out["facets"] = {
                key: [{"value": f.value, "count": f.count} for f in values]
                for key, values in self.facets.items()
            }
        if self.facets_over is not None:
            out["facets_over"] = self.facets_over.as_dict()
        if self.explain is not None:
            out["explain"] = self.explain.as_dict()
        return out


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def clean_text(text: str) -> str:
    """Typed text with control characters (NUL included, which PostgreSQL text cannot
    hold) as word separators and runs of whitespace as one space."""
    return " ".join(_CONTROL.sub(" ", text).split())


def normalise_query(query: Any) -> str:
    if not isinstance(query, str):
        raise SearchError("query must be a string")
    text = clean_text(query)
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


MIN_EF, MAX_EF = 10, 1000


@dataclass
class SearchOptions:
    """Per-request knobs beside the query, page and filters (all validated)."""

    limit: int = 20  # results on the page
    offset: int = 0  # results skipped before it
    filters: Filters | None = None  # see search.filters
    ef_search: int | None = None  # hnsw.ef_search for this request
    exact: bool = False  # brute force: score every (matching) product exactly
    explain: bool = False  # each result's score parts, and the query analysis
    facets: bool = False  # category / brand counts over the candidate set
    understand: bool = True  # constraints in the query (price, side, …) applied
    ignore: tuple[str, ...] = ()  # understood constraints not to apply
    # internal: one of a constrained search's runs (search.constrained), which fetch a
    # whole deep page at once: its limit may reach MAX_LIMIT + MAX_OFFSET
    whole_page: bool = False
    highlight_query: str | None = None  # internal: the text results are marked against

    def check(self) -> None:
        if self.whole_page:
            check_page(1, 0)
            if not 1 <= self.limit <= MAX_LIMIT + MAX_OFFSET or self.offset != 0:
                raise SearchError("a whole page is fetched from offset 0")
        else:
            check_page(self.limit, self.offset)
        if self.filters is not None and not isinstance(self.filters, dict):
            raise SearchError("filters must be an object of filter keys")
        ef = self.ef_search
        if ef is not None and (
            isinstance(ef, bool) or not isinstance(ef, int) or not MIN_EF <= ef <= MAX_EF
        ):
            raise SearchError(f"ef_search must be an integer from {MIN_EF} to {MAX_EF}")
        if not isinstance(self.ignore, tuple) or any(i not in CONSTRAINTS for i in self.ignore):
            raise SearchError(f"ignore takes constraint names: {', '.join(CONSTRAINTS)}")
        for name in ("exact", "explain", "facets", "understand"):
            if not isinstance(getattr(self, name), bool):
                raise SearchError(f"{name} must be true or false")


def _opt_float(value: Any) -> float | None:
    return None if value is None else round(float(value), 6)


def shape_row(
    row: Candidate,
    explain: bool,
    language: str | None = None,
    mask_names: tuple[str, ...] = (),
    wanted: frozenset[str] = frozenset(),
) -> SearchHit:
    """A candidate as a :class:`SearchHit`; its title in ``language`` when the product has
    a name in it; ``mask_names``: the constraint of each bit of its ``constraint_mask``."""
    met = None
    if mask_names:
        mask = row.constraint_mask or 0
        met = tuple(n for i, n in enumerate(mask_names) if mask >> i & 1)
    title = row.polish_name if language == "pl" else None
    parts = None
    if explain:
        parts = ScoreParts(
            distance=_opt_float(row.distance),
            semantic_rank=row.semantic_rank,
            lexical_rank=row.lexical_rank,
            lexical_score=_opt_float(row.lexical_score),
            code_match=row.code_match,
            vehicle_match=row.vehicle_match,
        )
    return SearchHit(
        product_id=int(row.product_id),
        name=row.name,
        polish_name=row.polish_name,
        category=row.category,
        brand=row.brand,
        price=None if row.price is None else float(row.price),
        in_stock=row.in_stock,
        score=round(float(row.score or 0.0), 6),
        explain=parts,
        title=title or row.name,
        constraints_met=met,
        highlight=highlight(
            title or row.name,
            row.polish_description if title else row.description,
            wanted,
        ),
    )


def facet_counts(
    rows: Sequence[Candidate], keys: Sequence[DisplayColumn]
) -> dict[str, list[FacetCount]]:
    """Value counts of the given columns over ``rows``, most frequent first."""
    out: dict[str, list[FacetCount]] = {}
    for key in keys:
        counts: dict[str, int] = {}
        for row in rows:
            value = row.facet_value(key)
            if value is not None:
                counts[value] = counts.get(value, 0) + 1
        ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
        out[key] = [FacetCount(v, n) for v, n in ranked]
    return out
