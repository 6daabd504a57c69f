"""SQL of embed runs: the runs table (one row per ``prodsearch embed``), the lock that
keeps one run at a time per database, and the connection check a long run makes.

Nothing here commits: the caller owns the transaction (docs/ARCHITECTURE.md,
"Transactions")."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import class_row

from prodsearch.config import EncoderMode
from prodsearch.db.names import RUNS
from prodsearch.jsonvalue import JsonObject

SYNC_LOCK_KEY = 0x656D6264  # 'embd': one sync at a time per database


def ping(conn: psycopg.Connection[Any]) -> None:
    """A round trip (raises when the connection is gone)."""
    conn.execute("SELECT 1")


def try_run_lock(conn: psycopg.Connection[Any]) -> bool:
    """Take the one-run-per-database session lock if it is free."""
    got = conn.execute("SELECT pg_try_advisory_lock(%s)", (SYNC_LOCK_KEY,)).fetchone()
    return bool(got and got[0])


def wait_run_lock(conn: psycopg.Connection[Any], wait_s: float) -> None:
    """Wait up to ``wait_s`` for the run lock (``psycopg.errors.LockNotAvailable`` after)."""
    conn.execute(sql.SQL("SET lock_timeout = {}").format(sql.Literal(int(wait_s * 1000))))
    conn.execute("SELECT pg_advisory_lock(%s)", (SYNC_LOCK_KEY,))
    conn.execute("RESET lock_timeout")


def start_run(
    conn: psycopg.Connection[Any], mode: EncoderMode, model: str, settings: JsonObject
) -> int:
    """Mark runs left 'running' by a killed process as interrupted, then open a new one."""
    conn.execute(
        sql.SQL(
            "UPDATE {} SET status = 'interrupted', finished_at = coalesce(finished_at, now()), "
            "error = coalesce(error, 'process ended before the run finished') "
            "WHERE status = 'running'"
        ).format(RUNS)
    )
    row = conn.execute(
        sql.SQL(
            "INSERT INTO {} (mode, model_name, settings, pid) VALUES (%s, %s, %s, "
            "pg_backend_pid()) RETURNING run_id"
        ).format(RUNS),
        (mode, model, json.dumps(settings)),
    ).fetchone()
    assert row is not None
    return int(row[0])


def update_run(conn: psycopg.Connection[Any], run_id: int, **fields: Any) -> None:
    """Set counts/status/timings on a run (jsonb for dicts)."""
    sets: list[sql.Composable] = []
    values: list[Any] = []
    for key, value in fields.items():
        sets.append(sql.SQL("{} = %s").format(sql.Identifier(key)))
        values.append(json.dumps(value) if isinstance(value, dict) else value)
    if fields.get("status") and fields["status"] != "running":
        sets.append(sql.SQL("finished_at = now()"))
    conn.execute(
        sql.SQL("UPDATE {} SET {} WHERE run_id = %s").format(RUNS, sql.SQL(", ").join(sets)),
        (*values, run_id),
    )


@dataclass(frozen=True, slots=True)
class RunRow:
    """A run as the runs table records it."""

    run_id: int
    status: str  # running, succeeded, failed or interrupted
    stage: str  # the step it reached (plan, embed, index, …)
    mode: str  # as recorded (an encoder mode)
    started_at: datetime
    finished_at: datetime | None
    embedded: int
    skipped_unchanged: int
    deduplicated: int
    deleted: int
    failed: int
    error: str | None


def last_run(conn: psycopg.Connection[Any]) -> RunRow | None:
    with conn.cursor(row_factory=class_row(RunRow)) as cur:
        cur.execute(
            sql.SQL(
                "SELECT run_id, status, stage, mode, started_at, finished_at, embedded, "
                "skipped_unchanged, deduplicated, deleted, failed, error "
                "FROM {} ORDER BY run_id DESC LIMIT 1"
            ).format(RUNS)
        )
        return cur.fetchone()
