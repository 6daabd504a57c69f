"""Keeping the completions in step with the catalog: rebuilt by ``embed``, extended by
``watch`` when a batch brings a brand, a product type or a vehicle the table lacks (so it
is suggested as soon as its first product is searchable). Counts of existing completions
are refreshed by the next ``embed`` or the worker's periodic support refresh."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import psycopg

from prodsearch.catalog.source import Source
from prodsearch.config import Settings
from prodsearch.suggest import phrases
from prodsearch.suggest import sql as suggest_sql


@dataclass(frozen=True)
class SuggestColumns:
    category: str = "category"
    brand: str = "brand"
    vehicle: str = "vehicle"
    polish_name: str = "polish_name"

    @classmethod
    def from_settings(cls, settings: Settings) -> SuggestColumns:
        return cls(brand=settings.brand_column, vehicle=settings.vehicle_column)


def _derive(
    conn: psycopg.Connection[Any], source: Source, cols: SuggestColumns
) -> list[phrases.Suggestion]:
    by_category: dict[str, list[tuple[str | None, str | None, str | None]]] = defaultdict(list)
    for category, name, polish, brand in suggest_sql.category_samples(
        conn, source, cols.category, cols.brand, cols.polish_name
    ):
        by_category[category].append((name, polish, brand))
    samples = [phrases.CategorySample(c, names) for c, names in by_category.items()]

    def single(column: str) -> dict[str, int]:
        return {k[0]: n for k, n in suggest_sql.counts(conn, source, [column]).items()}

    def pairs(column: str) -> dict[tuple[str, str], int]:
        found = suggest_sql.counts(conn, source, [cols.category, column])
        return {(k[0], k[1]): n for k, n in found.items()}

    return phrases.build(
        samples,
        single(cols.category),
        single(cols.brand),
        single(cols.vehicle),
        pairs(cols.brand),
        pairs(cols.vehicle),
    )


def _rows(found: list[phrases.Suggestion]) -> list[tuple[Any, ...]]:
    return [(s.folded, s.phrase, s.kind, s.lang, s.products) for s in found]


def rebuild(conn: psycopg.Connection[Any], source: Source, cols: SuggestColumns) -> int:
    """Every completion anew, in the caller's transaction; how many."""
    found = _derive(conn, source, cols)
    suggest_sql.replace_all(conn, _rows(found))
    return len(found)


def add_new(
    conn: psycopg.Connection[Any],
    source: Source,
    cols: SuggestColumns,
    ids: list[int],
    checked: set[str] | None = None,
) -> int:
    """When these products hold a category, brand or vehicle no completion names yet, the
    completions that are missing are added (existing ones keep their counts); how many.
    ``checked``: values a caller has already derived completions for (updated here). A
    value that yields no completion of its own (the catalog's derivation leaves it out)
    would otherwise derive the whole catalog's completions again on every call that
    meets it: ~2 s a batch at 278,697 products (docs/BENCHMARKS.md, #32)."""
    values = suggest_sql.values_of(conn, source, [cols.category, cols.brand, cols.vehicle], ids)
    named = {phrases.folded(v) for v in values} - (checked or set())
    if not named or named <= suggest_sql.known(conn, sorted(named)):
        return 0
    if checked is not None:
        checked |= named
    found = _derive(conn, source, cols)
    before = suggest_sql.known(conn, [s.folded for s in found])
    new = [s for s in found if s.folded not in before]
    suggest_sql.insert(conn, _rows(new))
    return len(new)


def count(conn: psycopg.Connection[Any]) -> int:
    """How many completions are stored (0: none built yet)."""
    row = conn.execute(suggest_sql.count()).fetchone()
    return int(row[0]) if row else 0
