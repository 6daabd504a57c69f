"""Search with the constraints understood in a query (:mod:`~prodsearch.search.constraints`).

The query's product words (the residual) are searched twice, with the same mode:

* **strict** — every understood constraint is a filter (an explicit price bound, the
  vehicle, the side, the engine, the brand), so rare products that meet them all are
  found however deep they lie;
* **pool** — the query without its price words (the attribute words kept: "rear box"
  is a silencer, and a brand's name helps the full-text leg), only the price filters;
  each product says which constraints it meets (a bit mask computed in the same SQL).

The page is the strict matches of the product type the shopper asked for (the categories
that lead the pool), then the pool's products of that type that meet the most
constraints (a constraint *relaxed*: the response says which), then anything else. A
shopper who asks for more than the catalog holds still sees the nearest products, and is
told which constraint they break. When nothing at all meets the price, the price is
relaxed too. Explicit filters win over understood ones.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from psycopg import sql

from prodsearch.catalog.source import Source
from prodsearch.jsonvalue import JsonObject, JsonValue
from prodsearch.search import queries
from prodsearch.search.constraints import RELAX_ORDER, Understood
from prodsearch.search.filters import allowed_keys
from prodsearch.search.probes import leading
from prodsearch.search.queries import SqlParams
from prodsearch.search.results import SearchHit, SearchOptions, SearchResponse, normalise_query
from prodsearch.search.understanding import QueryUnderstanding

POOL = 50  # results each search returns at least: the tiers are drawn from them
LEAD = 10  # the pool's first results that say which product types the query asks for
LEAD_SHARE = 3  # a category among them this often is one the query asks for


@dataclass(frozen=True)
class ConstraintSQL:
    """Understood constraints for one search: as filter conditions (``where``) or as a
    mask of the ones each product meets (``mask``); ``params`` for both."""

    where: sql.Composable | None = None
    mask: sql.Composable | None = None
    names: tuple[str, ...] = ()
    params: SqlParams = field(default_factory=dict)


@dataclass(frozen=True)
class ConstraintPlan:
    understood: Understood
    opts: SearchOptions
    text: str  # what is searched: the query without its constraint words
    filters: dict[str, JsonValue]  # the explicit filters and the understood price bounds
    explicit: dict[str, JsonValue]  # the explicit filters alone
    price: bool  # an understood price bound is applied
    names: tuple[str, ...]  # the attribute constraints applied, one condition each
    conditions: tuple[sql.Composable, ...]
    params: SqlParams

    @property
    def applied(self) -> JsonObject:
        """The response's ``understood``: what was understood *and* applied."""
        out = self.understood.as_dict()
        if not self.price:
            for key in ("price_min", "price_max", "currency"):
                out.pop(key, None)
        for name in ("vehicle", "position", "engine", "brand"):  # the keys are the names
            if name not in self.names:
                out.pop(name, None)
        return out


# one search of the plan: the response, and the query vector it searched with
Run = Callable[
    [str, SearchOptions, ConstraintSQL], Awaitable[tuple[SearchResponse, np.ndarray | None]]
]
# the product types a query vector asks for, by meaning (the searcher's probes)
Lead = Callable[[np.ndarray], set[str]]


def plan_constraints(
    understanding: QueryUnderstanding, source: Source, query: Any, opts: SearchOptions | None
) -> ConstraintPlan | None:
    """The constraints to apply to ``query``, or None when it has none (or the request
    turned understanding off): the search then runs as it always did."""
    opts = opts or SearchOptions()
    if opts.understand is not True or not isinstance(query, str):
        return None
    text = normalise_query(query)
    understood = understanding.catalog.understand(
        text, understanding.vehicles.find(text), ignore=frozenset(opts.ignore)
    )
    explicit: dict[str, JsonValue] = dict(opts.filters or {})
    cols = understanding.columns
    allowed = allowed_keys(source)
    bounds = {f"{cols.price}_min": understood.price_min, f"{cols.price}_max": understood.price_max}
    price = not any(key in explicit for key in bounds) and all(key in allowed for key in bounds)
    filters: dict[str, JsonValue] = dict(explicit)
    if price:
        filters.update({k: v for k, v in bounds.items() if v is not None})
        price = any(v is not None for v in bounds.values())
    names: list[str] = []
    conditions: list[sql.Composable] = []
    params: SqlParams = {}

    def add(name: str, kind: str, column: str, value: Any) -> None:
        if column in explicit:  # an explicit filter on the column wins
            return
        cond = queries.constraint_condition(source, kind, column, f"c_{name}")
        if cond is not None:
            names.append(name)
            conditions.append(cond)
            params[f"c_{name}"] = value

    if understood.vehicles:
        add("vehicle", "any", understanding.vehicle_column, list(understood.vehicles))
    if understood.positions:
        add("position", "words", cols.position, [f"%{p}%" for p in understood.positions])
    if understood.engine:
        add("engine", "one", cols.engine, understood.engine)
    if understood.brand:
        add("brand", "one", cols.brand, understood.brand)
    if not (price or names or understood.cheap):
        return None
    return ConstraintPlan(
        understood,
        opts,
        understood.residual,
        filters,
        explicit,
        price,
        tuple(names),
        tuple(conditions),
        params,
    )


def lead_categories(hits: Sequence[SearchHit]) -> set[str] | None:
    """The product types the query asks for: the category of the product nearest in
    meaning and any other that leads the semantic ranking often (None: the catalog has no
    categories). By meaning, in every mode: a full-text leg that matched "oil" in oil
    filters must not decide what "engine oil" is."""
    by_meaning = [
        (h.explain.semantic_rank, i, h)
        for i, h in enumerate(hits)
        if h.explain is not None and h.explain.semantic_rank is not None
    ]
    ranked = [h for *_key, h in sorted(by_meaning)] or list(hits)
    return leading([h.category for h in ranked[:LEAD]], LEAD_SHARE) or None


def merge(
    strict: Sequence[SearchHit],
    pool: Sequence[SearchHit],
    names: tuple[str, ...],
    meant: set[str] | None = None,
) -> list[SearchHit]:
    """Strict matches of the asked-for product types (those leading the pool, and
    ``meant``: those nearest in meaning), then the pool's products of those types by how
    many constraints they meet, then the rest (strict first)."""
    cats = lead_categories(pool or strict)
    if cats is not None and meant:
        cats |= meant
    wanted: Callable[[SearchHit], bool] = (
        (lambda h: True) if cats is None else (lambda h: h.category in cats)
    )
    strict = [replace(h, constraints_met=names) for h in strict]
    first = [h for h in strict if wanted(h)]
    seen = {h.product_id for h in first}
    ranked = sorted(
        (h for h in pool if h.product_id not in seen and wanted(h)),
        key=lambda h: -len(h.constraints_met or ()),  # stable: the pool's order within
    )
    out = first + ranked
    seen.update(h.product_id for h in ranked)
    for h in [*strict, *pool]:
        if h.product_id not in seen:
            out.append(h)
            seen.add(h.product_id)
    return out


async def constrained(plan: ConstraintPlan, run: Run, lead: Lead) -> SearchResponse:
    """The search of ``plan`` (strict, pool, merged) as one response (module docstring)."""
    started = time.perf_counter()
    opts = plan.opts
    page = opts.limit + opts.offset
    wide = replace(
        opts,
        limit=max(page, POOL),
        offset=0,
        filters=plan.filters or None,
        whole_page=True,
        explain=True,  # the semantic ranks say what product type is asked for
        highlight_query=plan.understood.described,  # constraint words marked too
    )
    names, conds = plan.names, list(plan.conditions)
    strict_sql = ConstraintSQL(where=queries.all_of(conds), names=names, params=plan.params)
    pool_sql = ConstraintSQL(mask=queries.constraint_mask(conds), names=names, params=plan.params)
    relaxed: list[str] = []
    if names:
        strict, _ = await run(plan.text, wide, strict_sql)
        pool, vector = await run(plan.understood.described or plan.text, wide, pool_sql)
        meant = lead(vector) if vector is not None else None
        results = merge(strict.results, pool.results, names, meant)
    else:
        strict, _ = await run(plan.text, wide, ConstraintSQL())
        pool = strict
        results = list(strict.results)
    if not results and plan.price:  # nothing at that price: the price relaxed
        relaxed.append("price")
        text = plan.understood.described or plan.text
        pool, _ = await run(text, replace(wide, filters=plan.explicit or None), pool_sql)
        results = list(pool.results)
    shown = results[opts.offset : page]
    if not opts.explain:
        shown = [replace(h, explain=None) for h in shown]
    broken = {n for h in shown for n in names if n not in (h.constraints_met or ())}
    relaxed += [n for n in RELAX_ORDER if n in broken]
    explain = strict.explain if opts.explain else None
    if explain is not None:
        explain = replace(
            explain,
            decisions=[d.as_dict() for d in plan.understood.decisions] or None,
            removed=list(plan.understood.removed) or None,
        )
    return replace(
        strict,
        results=shown,
        # facets count what the shopper's own filters (and the price) match, so a
        # constraint the page relaxed still leaves its values to refine by
        facets=pool.facets,
        facets_over=pool.facets_over,
        execution_time_ms=round((time.perf_counter() - started) * 1000, 3),
        explain=explain,
        understood=plan.applied,
        relaxed=relaxed,
        strict_matches=_strict_matches(shown, names, "price" in relaxed),
    )


def _strict_matches(shown: Sequence[SearchHit], names: tuple[str, ...], price_relaxed: bool) -> int:
    """Results on the page that meet every constraint applied."""
    if not names:
        return 0 if price_relaxed else len(shown)
    return sum(1 for h in shown if len(h.constraints_met or ()) == len(names))
