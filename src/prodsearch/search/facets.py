"""Distinct values of the text filter columns (for building filter controls)."""

from __future__ import annotations

from typing import Any

import psycopg

from prodsearch.catalog.source import Source
from prodsearch.jsonvalue import JsonObject
from prodsearch.search import queries
from prodsearch.search.filters import allowed_keys


async def facet_values(
    conn: psycopg.AsyncConnection[Any], source: Source, cap: int = 200
) -> JsonObject:
    keys = allowed_keys(source)
    values: dict[str, list[str]] = {}
    for key, (col, kind) in keys.items():
        if kind != "any":
            continue
        cur = await conn.execute(queries.facet_values(source, col, cap))
        values[key] = [r[0] for r in await cur.fetchall()]
    return {"keys": {k: kind for k, (_c, kind) in keys.items()}, "values": values}
