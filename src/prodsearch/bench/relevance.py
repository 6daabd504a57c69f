"""Graded relevance on judged shopper queries: nDCG@10, P@10 and MRR per search mode,
language and query kind.

The judged set (``bench/data/relevance_queries.tsv``, or ``--queries PATH`` in the same
format) names, per query, what a shopper wants in the catalog's *structured* fields:

``query  lang  kind  category  vehicle  position  brand``

``category`` (one or more leaf categories, ``|``-separated) is required; ``vehicle``
(vehicle names, ``|``-separated), ``position`` (words that must all appear in the
product's position, e.g. ``front left``) and ``brand`` are optional. A product's grade:

* 0 — another category;
* 1 + 2·m/n — the category, and ``m`` of the ``n`` named attributes match (3 when all do,
  or when the query names none).

nDCG@10 uses linear gains and the ideal ranking over the whole catalog (how many products
of each grade exist). A result is *relevant* for P@10 and MRR at grade ≥ 2. Part-number
queries (kind ``part_number``, language ``code``) are drawn from the catalog itself: the
part number of every n-th product, typed without its separators; the product itself is
grade 3, its category and brand 1.
"""

from __future__ import annotations

import asyncio
import csv
import json
import math
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import psycopg

from prodsearch.catalog import sql as catalog_sql
from prodsearch.catalog.source import Source
from prodsearch.config import Settings
from prodsearch.embedding import store
from prodsearch.errors import ProdsearchError
from prodsearch.search.results import SearchOptions
from prodsearch.search.rows import Candidate
from prodsearch.search.service import Searcher

K = 10
RELEVANT = 2.0
MODES = ("semantic", "hybrid", "lexical", "exact")


@dataclass(frozen=True)
class JudgedQuery:
    query: str
    lang: str
    kind: str
    categories: tuple[str, ...]
    vehicles: tuple[str, ...] = ()
    position: tuple[str, ...] = ()
    brand: str = ""
    product_id: int | None = None  # part-number queries: the product itself
    engine: str = ""
    price_min: float | None = None
    price_max: float | None = None

    @property
    def constrained(self) -> bool:
        """A constraint query: graded 1 + the constraints met (not on a 1–3 scale)."""
        return self.kind == "constraint"

    @property
    def has_price(self) -> bool:
        return self.price_min is not None or self.price_max is not None

    @property
    def attributes(self) -> int:
        named = bool(self.vehicles) + bool(self.position) + bool(self.brand)
        return named + bool(self.engine) + self.has_price

    def met(self, product: dict[str, Any]) -> int:
        """How many of the named constraints the product meets."""
        matched = 0
        if self.vehicles and product.get("vehicle") in self.vehicles:
            matched += 1
        if self.position:
            words = set((product.get("position") or "").lower().split())
            matched += all(w in words for w in self.position)
        if self.brand and product.get("brand") == self.brand:
            matched += 1
        if self.engine and product.get("engine") == self.engine:
            matched += 1
        if self.has_price:
            price = product.get("price")
            matched += price is not None and (
                (self.price_min is None or float(price) >= self.price_min)
                and (self.price_max is None or float(price) <= self.price_max)
            )
        return matched

    def meets_all(self, product: dict[str, Any]) -> bool:
        """Constraint precision's test: the product meets every named constraint."""
        return self.met(product) == self.attributes

    def grade(self, product: dict[str, Any]) -> float:
        if self.product_id is not None and product["product_id"] == self.product_id:
            return 3.0
        if product.get("category") not in self.categories:
            return 0.0
        if self.product_id is not None:
            return 1.0 if product.get("brand") == self.brand else 0.0
        if self.constrained:
            return 1.0 + self.met(product)
        if not self.attributes:
            return 3.0
        return 1.0 + 2.0 * self.met(product) / self.attributes


def _split(value: str | None) -> tuple[str, ...]:
    return tuple(p.strip() for p in (value or "").split("|") if p.strip())


def _number(value: str | None) -> float | None:
    return float(value) if value and value.strip() else None


def load_queries(path: str | Path | None = None) -> list[JudgedQuery]:
    """The judged query set (TSV with a header; see the module docstring)."""
    if path is None:
        text = (resources.files("prodsearch.bench") / "data" / "relevance_queries.tsv").read_text(
            "utf-8"
        )
    else:
        try:
            text = Path(path).read_text("utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ProdsearchError(f"cannot read the judged queries {path}: {exc}") from exc
    header = text.splitlines()[0].split("\t") if text.strip() else []
    if not {"query", "category"} <= set(header):
        raise ProdsearchError(
            f"{path or 'the shipped query set'}: expected a tab-separated header with at least "
            f"query and category (query lang kind category vehicle position brand)"
        )
    out = []
    for row in csv.DictReader(text.splitlines(), delimiter="\t"):
        if not (row.get("query") or "").strip() or not _split(row.get("category")):
            continue
        out.append(
            JudgedQuery(
                query=row["query"].strip(),
                lang=(row.get("lang") or "en").strip(),
                kind=(row.get("kind") or "plain").strip(),
                categories=_split(row.get("category")),
                vehicles=_split(row.get("vehicle")),
                position=tuple((row.get("position") or "").lower().split()),
                brand=(row.get("brand") or "").strip(),
                engine=(row.get("engine") or "").strip(),
                price_min=_number(row.get("price_min")),
                price_max=_number(row.get("price_max")),
            )
        )
    return out


def part_number_queries(
    conn: psycopg.Connection[Any], source: Source, count: int = 12
) -> list[JudgedQuery]:
    """``count`` part numbers from evenly spaced products, typed without separators."""
    if not {"part_number", "category", "brand"} <= set(source.columns):
        return []
    rows = catalog_sql.products_with_codes(conn, source)
    conn.commit()
    step = max(1, len(rows) // max(count, 1))
    out = []
    for pid, part, category, brand in rows[::step][:count]:
        typed = "".join(ch for ch in part if ch.isalnum())
        out.append(
            JudgedQuery(typed, "code", "part_number", (category,), brand=brand, product_id=int(pid))
        )
    return out


def ideal_dcg(conn: psycopg.Connection[Any], source: Source, q: JudgedQuery) -> float:
    """DCG@10 of the best possible ranking: the catalog's products sorted by grade."""
    grades: list[float] = []
    for row in _attributes(conn, source, "category", list(q.categories)):
        grades.append(q.grade(row))
    grades.sort(reverse=True)
    return dcg(grades[:K])


def _attributes(
    conn: psycopg.Connection[Any], source: Source, condition: str, values: list[Any]
) -> list[dict[str, Any]]:
    """The judged fields of the products matching ``condition`` (``category`` or ``id``
    equal to any of ``values``), eligible ones only when selecting by category."""
    judged = ("category", "brand", "vehicle", "position", "engine", "price")
    cols = [c for c in judged if c in source.columns]
    by = "category" if condition == "category" else source.id_column
    rows = catalog_sql.attributes(conn, source, cols, by, values)
    conn.commit()
    return rows


def product_attributes(
    conn: psycopg.Connection[Any], source: Source, ids: Iterable[int]
) -> dict[int, dict[str, Any]]:
    return {r["product_id"]: r for r in _attributes(conn, source, "id", list(ids))}


def dcg(grades: list[float]) -> float:
    return sum(g / math.log2(i + 2) for i, g in enumerate(grades))


@dataclass
class QueryScore:
    query: str
    lang: str
    kind: str
    mode: str
    ndcg: float
    precision: float
    mrr: float
    top: list[int] = field(default_factory=list)
    # constraint queries: the share of the top 10 that meets every named constraint
    constraint_precision: float | None = None


def score(
    q: JudgedQuery, mode: str, ids: list[int], attrs: dict[int, dict[str, Any]], ideal: float
) -> QueryScore:
    products = [attrs.get(pid, {"product_id": pid}) for pid in ids[:K]]
    grades = [q.grade(p) for p in products]
    first = next((i for i, g in enumerate(grades) if g >= RELEVANT), None)
    return QueryScore(
        q.query,
        q.lang,
        q.kind,
        mode,
        ndcg=dcg(grades) / ideal if ideal > 0 else 0.0,
        precision=sum(g >= RELEVANT for g in grades) / K,
        mrr=0.0 if first is None else 1.0 / (first + 1),
        top=ids[:K],
        constraint_precision=sum(q.meets_all(p) for p in products) / K if q.constrained else None,
    )


Runner = Callable[[psycopg.AsyncConnection[Any], str], Any]


def lexical_top(rows: Iterable[Candidate]) -> list[int]:
    """The full-text and code legs alone, in their own order (code match first): the top
    ids of "lexical" search, from hybrid's candidate rows."""
    hits = [
        (not r.code_match, r.lexical_rank or 0, r.product_id)
        for r in rows
        if r.lexical_rank is not None or r.code_match
    ]
    return [pid for *_key, pid in sorted(hits)[:K]]


def runners(searcher: Searcher, plain: Searcher | None = None) -> dict[str, Runner]:
    """Search modes by name: each returns the top-10 product ids for a query."""

    async def semantic(aconn: psycopg.AsyncConnection[Any], text: str) -> list[int]:
        resp = await searcher.semantic(aconn, text, SearchOptions(limit=K))
        return resp.ids

    async def exact(aconn: psycopg.AsyncConnection[Any], text: str) -> list[int]:
        resp = await searcher.semantic(aconn, text, SearchOptions(limit=K, exact=True))
        return resp.ids

    async def hybrid(aconn: psycopg.AsyncConnection[Any], text: str) -> list[int]:
        resp = await searcher.hybrid(aconn, text, SearchOptions(limit=K))
        return resp.ids

    async def lexical(aconn: psycopg.AsyncConnection[Any], text: str) -> list[int]:
        legs = await searcher.hybrid_legs(aconn, text, SearchOptions(limit=K))
        return lexical_top(legs.rows)

    out: dict[str, Runner] = {
        "semantic": semantic,
        "hybrid": hybrid,
        "lexical": lexical,
        "exact": exact,
    }
    if plain is not None:

        async def semantic_no_map(aconn: psycopg.AsyncConnection[Any], text: str) -> list[int]:
            resp = await plain.semantic(aconn, text, SearchOptions(limit=K))
            return resp.ids

        out["semantic_no_map"] = semantic_no_map
    return out


async def evaluate(
    conn: psycopg.Connection[Any],
    aconn: psycopg.AsyncConnection[Any],
    source: Source,
    queries: list[JudgedQuery],
    modes: dict[str, Runner],
) -> list[QueryScore]:
    """Run every query in every mode and score the top 10."""
    ideals = {q: ideal_dcg(conn, source, q) for q in queries}
    results: list[QueryScore] = []
    for name, run in modes.items():
        tops = [await run(aconn, q.query) for q in queries]
        attrs = product_attributes(conn, source, {pid for top in tops for pid in top})
        for q, top in zip(queries, tops, strict=True):
            results.append(score(q, name, top, attrs, ideals[q]))
    return results


@dataclass(frozen=True)
class Figures:
    """Means over a group of judged queries."""

    queries: int
    ndcg: float  # nDCG@10
    precision: float  # P@10
    mrr: float
    constraint_precision: float | None = None  # over the constraint queries among them

    def as_dict(self) -> dict[str, float]:
        out = {
            "queries": self.queries,
            "ndcg@10": self.ndcg,
            "p@10": self.precision,
            "mrr": self.mrr,
        }
        if self.constraint_precision is not None:
            out["constraint_precision"] = self.constraint_precision
        return out


def summarise(scores: list[QueryScore], by: tuple[str, ...]) -> dict[tuple[str, ...], Figures]:
    """Mean nDCG@10, P@10 and MRR grouped by the named fields."""
    groups: dict[tuple[str, ...], list[QueryScore]] = defaultdict(list)
    for s in scores:
        groups[tuple(getattr(s, f) for f in by)].append(s)
    return {
        key: Figures(
            queries=len(items),
            ndcg=round(sum(s.ndcg for s in items) / len(items), 4),
            precision=round(sum(s.precision for s in items) / len(items), 4),
            mrr=round(sum(s.mrr for s in items) / len(items), 4),
            constraint_precision=_mean_precision(items),
        )
        for key, items in sorted(groups.items())
    }


def _mean_precision(items: list[QueryScore]) -> float | None:
    values = [s.constraint_precision for s in items if s.constraint_precision is not None]
    return round(sum(values) / len(values), 4) if values else None


def save(path: str | Path, scores: list[QueryScore], meta: dict[str, Any]) -> None:
    Path(path).write_text(
        json.dumps({"meta": meta, "scores": [asdict(s) for s in scores]}, indent=1), "utf-8"
    )


def regressions(
    old_path: str | Path, scores: list[QueryScore], threshold: float = 0.1
) -> tuple[dict[tuple[str, str], tuple[float, float]], list[tuple[str, str, float, float]]]:
    """Against an earlier run: mean nDCG per (mode, lang) then and now, and the queries
    whose nDCG fell by more than ``threshold``."""
    old = [QueryScore(**s) for s in json.loads(Path(old_path).read_text("utf-8"))["scores"]]
    before = summarise(old, ("mode", "lang"))
    after = summarise(scores, ("mode", "lang"))
    means = {
        (k[0], k[1]): (before[k].ndcg if k in before else float("nan"), v.ndcg)
        for k, v in after.items()
    }
    prior = {(s.mode, s.query): s.ndcg for s in old}
    worse = [
        (s.mode, s.query, prior[(s.mode, s.query)], s.ndcg)
        for s in scores
        if (s.mode, s.query) in prior and prior[(s.mode, s.query)] - s.ndcg > threshold
    ]
    return means, sorted(worse)


def run(
    conn: psycopg.Connection[Any],
    url: str,
    searcher: Searcher,
    plain: Searcher | None,
    queries: list[JudgedQuery],
    modes: Iterable[str],
) -> list[QueryScore]:
    from pgvector.psycopg import register_vector_async

    async def main() -> list[QueryScore]:
        async with await psycopg.AsyncConnection.connect(url, autocommit=True) as aconn:
            await register_vector_async(aconn)
            await searcher.load_vocabulary(aconn)
            if plain is not None:
                await plain.load_vocabulary(aconn)
            available = runners(searcher, plain)
            chosen = {m: available[m] for m in modes if m in available}
            return await evaluate(conn, aconn, searcher.source, queries, chosen)

    return asyncio.run(main())


def judge(
    settings: Settings, queries_path: str | None, modes: list[str]
) -> tuple[list[QueryScore], dict[str, Any]]:
    """Every judged query (the shipped set or ``queries_path``, plus part-number queries
    drawn from the catalog) through each of ``modes``, with the searcher the API builds:
    the per-query scores and what they were measured on."""
    from prodsearch.db import connect, database_url, migrate
    from prodsearch.search.setup import build_searcher, query_encoder

    url = database_url(settings)
    with connect(url) as conn:
        migrate(conn)
        encoder = query_encoder(settings)
        searcher = build_searcher(conn, settings, encoder)
        plain = None
        if "semantic_no_map" in modes:
            plain = build_searcher(conn, settings, encoder, use_query_map=False)
        queries = load_queries(queries_path)
        queries += part_number_queries(conn, searcher.source)
        scores = run(conn, url, searcher, plain, queries, modes)
        found = store.count_embeddings(conn)
    meta = {
        "queries": len(queries),
        "products_embedded": found,
        "mode": searcher.mode.mode,
        "query_mode": encoder.mode,
        "model": encoder.model_name,
        "ef_search": settings.ef_search,
        "query_map": searcher.query_map is not None,
        "query_set": queries_path or "shipped",
    }
    return scores, meta


LEGS = ("semantic", "lexical")


def best_leg_gaps(
    scores: list[QueryScore], by: tuple[str, ...] = ("lang",)
) -> dict[tuple[str, ...], dict[str, float]]:
    """Hybrid against the better of its own legs (semantic, lexical) per group: the means
    of hybrid and of each leg, and hybrid minus the better leg's mean."""
    out: dict[tuple[str, ...], dict[str, float]] = {}
    summary = {m: summarise([s for s in scores if s.mode == m], by) for m in ("hybrid", *LEGS)}
    for key, figures in summary["hybrid"].items():
        legs = {m: summary[m][key].ndcg for m in LEGS if key in summary[m]}
        if len(legs) < len(LEGS):
            continue
        best = max(legs.values())
        out[key] = {
            "queries": figures.queries,
            "hybrid": figures.ndcg,
            **legs,
            "best_leg": best,
            "hybrid_minus_best": round(figures.ndcg - best, 4),
        }
    return out


def hybrid_losses(scores: list[QueryScore], threshold: float = 0.3) -> list[dict[str, Any]]:
    """Queries where hybrid scores more than ``threshold`` nDCG under its better leg."""
    per: dict[str, dict[str, QueryScore]] = defaultdict(dict)
    for s in scores:
        per[s.query][s.mode] = s
    out = []
    for query, modes in per.items():
        if "hybrid" not in modes or not all(m in modes for m in LEGS):
            continue
        best_mode = max(LEGS, key=lambda m: modes[m].ndcg)
        loss = modes[best_mode].ndcg - modes["hybrid"].ndcg
        if loss > threshold:
            out.append(
                {
                    "query": query,
                    "lang": modes["hybrid"].lang,
                    "kind": modes["hybrid"].kind,
                    "hybrid": round(modes["hybrid"].ndcg, 4),
                    "best_leg": best_mode,
                    "best": round(modes[best_mode].ndcg, 4),
                }
            )
    return sorted(out, key=lambda r: r["hybrid"] - r["best"])
