"""SQL for the catalog's recorded encoder mode (``analytics_features.encoder_mode``, one
row at most; the policy is :mod:`prodsearch.embedding.modes`). Never commits."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import class_row

from prodsearch.db.names import ENCODER_MODE


@dataclass(frozen=True)
class RecordedMode:
    mode: str
    model_name: str
    reason: str
    recorded_at: datetime


def recorded(conn: psycopg.Connection[Any]) -> RecordedMode | None:
    with conn.cursor(row_factory=class_row(RecordedMode)) as cur:
        return cur.execute(
            sql.SQL("SELECT mode, model_name, reason, recorded_at FROM {}").format(ENCODER_MODE)
        ).fetchone()


def record(conn: psycopg.Connection[Any], mode: str, model_name: str, reason: str) -> None:
    conn.execute(
        sql.SQL(
            "INSERT INTO {} (mode, model_name, reason) VALUES (%s, %s, %s) "
            "ON CONFLICT (singleton) DO UPDATE SET mode = EXCLUDED.mode, "
            "model_name = EXCLUDED.model_name, reason = EXCLUDED.reason, recorded_at = now()"
        ).format(ENCODER_MODE),
        (mode, model_name, reason),
    )
