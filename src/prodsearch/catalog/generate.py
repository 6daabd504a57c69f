"""Deterministic, realistic demo catalog: auto parts with English and Polish texts.

Shaped after the original platform's catalog: name 100 %, polish_name 88 %,
description 71 %, polish_description 56 % coverage; descriptions from empty to several
hundred words (long tail); ~37 leaf categories under 13 parents; 40 brands with their
own part-number styles (spaces, dots, slashes, dashes); ~1.5 % soft-deleted rows; ~4 %
variants that repeat another product's texts exactly (as real catalogs do).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import psycopg
from psycopg import sql

from prodsearch.catalog import sql as catalog_sql
from prodsearch.catalog import vocab
from prodsearch.catalog.source import Source
from prodsearch.db.connect import vacuum_analyze
from prodsearch.db.names import DEMO_CATALOG
from prodsearch.errors import ConfigError

COVERAGE = {"polish_name": 0.88, "description": 0.71, "polish_description": 0.56}
DELETED_SHARE = 0.015
DUPLICATE_SHARE = 0.04
HTML_SHARE = 0.03
FIRST_ID = 100_001
_BASE_TIME = datetime(2026, 1, 1, tzinfo=UTC)

DEMO_TABLE = DEMO_CATALOG
COLUMNS: tuple[str, ...] = (
    "product_id",
    "sku",
    "part_number",
    "name",
    "polish_name",
    "description",
    "polish_description",
    "category",
    "category_path",
    "brand",
    "price",
    "currency",
    "stock_qty",
    "in_stock",
    "is_deleted",
    "updated_at",
    "vehicle",
    "engine",
    "position",
)


def _part_number(rng: random.Random, style: str) -> str:
    out = []
    for ch in style:
        if ch == "#":
            out.append(str(rng.randrange(10)))
        elif ch == "X":
            out.append(chr(65 + rng.randrange(26)))
        else:
            out.append(ch)
    return "".join(out)


def _fill(rng: random.Random, template: str) -> str:
    if "{" not in template:
        return template
    return template.format(
        n1=rng.randrange(2, 10), n2=rng.randrange(10, 100), n3=rng.randrange(100, 1000)
    )


def _sentence_count(rng: random.Random) -> int:
    # Log-normal: median ~4 sentences, a long tail to a few hundred words.
    return min(1 + int(rng.lognormvariate(1.2, 0.95)), 90)


def _description(
    rng: random.Random,
    intro: tuple[str, ...],
    specs: tuple[str, ...],
    filler: tuple[str, ...],
    fits_label: str,
    fields: dict[str, str],
    vehicle: str,
) -> str:
    count = _sentence_count(rng)
    sentences = [rng.choice(intro).format(**fields)]
    sentences.extend(_fill(rng, s) for s in rng.sample(specs, min(len(specs), count - 1)))
    while len(sentences) < count:
        if rng.random() < 0.2:
            fits = ", ".join(
                f"{v} {rng.choice(vocab.engines_for(v))}" for v in vocab.platform_of(vehicle)
            )
            sentences.append(f"{fits_label}: {fits}.")
        else:
            sentences.append(rng.choice(filler))
    text = " ".join(sentences)
    if rng.random() < HTML_SHARE:  # some feeds carry HTML; text preparation strips it
        half = len(sentences) // 2 or 1
        text = (
            "<p>"
            + " ".join(sentences[:half])
            + "</p><ul><li>"
            + "</li><li>".join(sentences[half:]).replace("&", "&amp;")
            + "</li></ul>"
        )
    return text


def _new_listing(
    rng: random.Random, pt: Any, brand: str, part_no: str, sku: str
) -> tuple[Any, ...]:
    """A product listing of its own: names, descriptions and fitment (vehicle, engine,
    position); (part type, brand, part no, sku, name, polish name, description, polish
    description, fitment)."""
    vehicle, years = rng.choice(vocab.VEHICLES)
    engine_name = rng.choice(vocab.engines_for(vehicle)) if rng.random() < 0.5 else None
    engine = f" {engine_name}" if engine_name else ""
    pos = rng.choice(pt.positions) if pt.positions else None
    fitment = (vehicle, engine_name, vocab.POS_EN[pos] if pos else None)
    pos_en = f" {vocab.POS_EN[pos]}" if pos else ""
    pos_pl = f" {vocab.POS_PL[pt.gender][pos]}" if pos else ""
    name = f"{brand} {pt.en}{pos_en} for {vehicle}{engine} ({years}) {part_no}"
    polish_name = polish_description = description = None
    fields = {"brand": brand, "part_lc": pt.en.lower(), "part_pl": pt.pl}
    if rng.random() < COVERAGE["polish_name"]:
        polish_name = f"{pt.pl}{pos_pl} {brand} do {vehicle}{engine} ({years}) {part_no}"
        if rng.random() < COVERAGE["polish_description"] / COVERAGE["polish_name"]:
            polish_description = _description(
                rng, vocab.INTRO_PL, pt.specs_pl, vocab.FILLER_PL, "Pasuje do", fields, vehicle
            )
    if rng.random() < COVERAGE["description"]:
        description = _description(
            rng, vocab.INTRO_EN, pt.specs_en, vocab.FILLER_EN, "Fits", fields, vehicle
        )
    return (pt, brand, part_no, sku, name, polish_name, description, polish_description, fitment)


def rows(count: int, seed: int = 42) -> Iterator[tuple[Any, ...]]:
    """Yield ``count`` catalog rows (in ``COLUMNS`` order), the same for the same seed."""
    rng = random.Random(seed)
    recent: list[tuple[Any, ...]] = []
    brands = {pt.category: vocab.brands_for(pt.category) for pt in vocab.PART_TYPES}
    for i in range(count):
        pt = rng.choice(vocab.PART_TYPES)
        brand, style = rng.choice(brands[pt.category])
        part_no = _part_number(rng, style)
        sku = brand[:3].upper().replace("Ö", "O") + "-" + "".join(c for c in part_no if c.isalnum())
        if recent and rng.random() < DUPLICATE_SHARE:
            # a variant: another listing of a recent product (same part, texts and fitment;
            # its own id, price and stock)
            listing = rng.choice(recent)
        else:
            listing = _new_listing(rng, pt, brand, part_no, sku)
            recent.append(listing)
            if len(recent) > 2000:
                recent = recent[-1000:]
        pt, brand, part_no, sku, name, polish_name, description, polish_description, fitment = (
            listing
        )
        stock = 0 if rng.random() < 0.12 else 1 + int(rng.lognormvariate(2.5, 1.0))
        price = Decimal(str(round(pt.price * rng.lognormvariate(0, 0.35), 2)))
        yield (
            FIRST_ID + i,
            sku,
            part_no,
            name,
            polish_name,
            description,
            polish_description,
            pt.category,
            f"{vocab.PARENT_OF[pt.category]} > {pt.category}",
            brand,
            price,
            "PLN",
            stock,
            stock > 0,
            rng.random() < DELETED_SHARE,
            _BASE_TIME - timedelta(seconds=rng.randrange(365 * 86400)),
            *fitment,
        )


def load(
    conn: psycopg.Connection[Any],
    count: int,
    seed: int = 42,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Replace the demo catalog (``DEMO_TABLE``, whose columns the generator writes; not
    the configured source, which may be any table) with ``count`` generated rows."""
    schema, table = DEMO_TABLE.split(".")
    with conn.transaction():
        catalog_sql.replace_rows(
            conn, sql.Identifier(schema, table), COLUMNS, rows(count, seed), progress
        )
    vacuum_analyze(conn, schema, table)
    if progress is not None:
        progress(count)
    return count


def ensure_demo(conn: psycopg.Connection[Any], source: Source, products: int) -> tuple[int, bool]:
    """What the demo starts from: the products the configured source holds, and whether
    they were generated now. An empty demo table is filled with ``products`` generated
    rows; an empty table of the user's own is an error (the demo never writes into it)."""
    existing = catalog_sql.count_rows(conn, source)
    if existing:
        return existing, False
    if source.name != DEMO_TABLE:
        raise ConfigError(
            f"{source.name} (PRODSEARCH_SOURCE_TABLE) is empty: import a catalog into it first "
            "(prodsearch catalog import FILE), or unset PRODSEARCH_SOURCE_TABLE for the demo "
            "catalog"
        )
    return load(conn, products), True
