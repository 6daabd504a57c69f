"""SQL of the stored Polish→English query maps (one per model and encoder mode).

Nothing here commits: the caller owns the transaction (docs/ARCHITECTURE.md,
"Transactions")."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import class_row

from prodsearch.config import EncoderMode
from prodsearch.db.names import QUERY_MAPS
from prodsearch.jsonvalue import JsonObject


@dataclass(frozen=True, slots=True)
class StoredQueryMap:
    dim: int
    matrix: bytes  # float32 little-endian, dim × dim
    pairs: int  # the name pairs it was fitted on
    details: JsonObject  # the fit's figures


def save_query_map(
    conn: psycopg.Connection[Any],
    model: str,
    mode: EncoderMode,
    dim: int,
    matrix: bytes,
    pairs: int,
    details: JsonObject,
) -> None:
    """Store (or replace) the Polish→English map of ``model`` and ``mode``."""
    conn.execute(
        sql.SQL(
            "INSERT INTO {} (model_name, mode, dim, matrix, pairs, details) "
            "VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (model_name, mode) DO UPDATE SET "
            "dim = EXCLUDED.dim, matrix = EXCLUDED.matrix, pairs = EXCLUDED.pairs, "
            "details = EXCLUDED.details, created_at = now()"
        ).format(QUERY_MAPS),
        (model, mode, dim, matrix, pairs, json.dumps(details)),
    )


def load_query_map(
    conn: psycopg.Connection[Any], model: str, mode: EncoderMode
) -> StoredQueryMap | None:
    """The map of ``model`` and ``mode``, or None when none is stored."""
    with conn.cursor(row_factory=class_row(StoredQueryMap)) as cur:
        cur.execute(
            sql.SQL(
                "SELECT dim, matrix, pairs, details FROM {} WHERE model_name = %s AND mode = %s"
            ).format(QUERY_MAPS),
            (model, mode),
        )
        return cur.fetchone()
