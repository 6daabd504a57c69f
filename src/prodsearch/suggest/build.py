"""Keeping the completions in step with the catalog: rebuilt by ``embed``, extended by
``watch`` when a batch brings a brand, a product type or a vehicle the table lacks (so it
is suggested within seconds of its first product: the worker derives it beside its
batches). Counts of existing completions are refreshed by the next ``embed`` or the
worker's periodic support refresh."""

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


@dataclass(frozen=True)
class Derived:
    suggestions: list[phrases.Suggestion]
    values: frozenset[str]  # every category, brand and vehicle of the catalog, folded


def _derive(conn: psycopg.Connection[Any], source: Source, cols: SuggestColumns) -> Derived:
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

    categories, brands = single(cols.category), single(cols.brand)
    vehicles = single(cols.vehicle)
    found = phrases.build(
        samples, categories, brands, vehicles, pairs(cols.brand), pairs(cols.vehicle)
    )
    values = frozenset(phrases.folded(v) for v in [*categories, *brands, *vehicles])
    return Derived(found, values)


def _rows(found: list[phrases.Suggestion]) -> list[tuple[Any, ...]]:
    return [(s.folded, s.phrase, s.kind, s.lang, s.products) for s in found]


def rebuild(conn: psycopg.Connection[Any], source: Source, cols: SuggestColumns) -> int:
    """Every completion anew, in the caller's transaction; how many."""
    found = _derive(conn, source, cols).suggestions
    suggest_sql.replace_all(conn, _rows(found))
    return len(found)


def unnamed(
    conn: psycopg.Connection[Any],
    source: Source,
    cols: SuggestColumns,
    ids: list[int],
    checked: set[str],
) -> set[str]:
    """The categories, brands and vehicles (folded) of these products that no completion
    names yet and that are not in ``checked`` (values the caller derived already): a
    cheap read, so a batch can ask it and leave the derivation to :func:`add_missing`."""
    values = suggest_sql.values_of(conn, source, [cols.category, cols.brand, cols.vehicle], ids)
    named = {phrases.folded(v) for v in values} - checked
    if not named:
        return set()
    return named - suggest_sql.known(conn, sorted(named))


@dataclass(frozen=True)
class Added:
    added: int  # completions new to the table
    values: frozenset[str]  # the catalog's values they were derived from (folded)


def add_missing(conn: psycopg.Connection[Any], source: Source, cols: SuggestColumns) -> Added:
    """The whole catalog's completions derived, those not stored yet added (existing
    ones keep their counts), in the caller's transaction. Seconds of work at 278,697
    products, so the watch worker runs it beside its batches."""
    derived = _derive(conn, source, cols)
    before = suggest_sql.known(conn, [s.folded for s in derived.suggestions])
    new = [s for s in derived.suggestions if s.folded not in before]
    suggest_sql.insert(conn, _rows(new))
    return Added(len(new), derived.values)


def count(conn: psycopg.Connection[Any]) -> int:
    """How many completions are stored (0: none built yet)."""
    row = conn.execute(suggest_sql.count()).fetchone()
    return int(row[0]) if row else 0
