"""Installing change capture on the configured source table, and what it watches."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import psycopg

from prodsearch.catalog.source import Source
from prodsearch.config import Settings
from prodsearch.db.names import QUEUE_NAME
from prodsearch.jsonvalue import JsonObject
from prodsearch.watch import sql as watch_sql


def watched_columns(source: Source, settings: Settings) -> list[str]:
    """Columns whose change changes what is stored or found: the id, the embedded text,
    the full-text fields, the product codes, the vehicle and the soft-delete predicate.
    Price and stock are read live at query time: an update of only those enqueues nothing."""
    cols = [source.id_column, *source.hash_columns]
    if settings.vehicle_column in source.columns:
        cols.append(settings.vehicle_column)
    if source.deleted_column:
        cols.append(source.deleted_column)
    return list(dict.fromkeys(cols))


@dataclass(frozen=True)
class FailedItem:
    """A product whose write failed (watch worker): retried with backoff, then set aside."""

    product_id: int
    tries: int
    error: str
    first_failed_at: datetime
    last_failed_at: datetime
    retry_at: datetime | None
    set_aside: bool

    def as_dict(self) -> JsonObject:
        return {
            "product_id": self.product_id,
            "tries": self.tries,
            "error": self.error,
            "first_failed_at": self.first_failed_at.isoformat(),
            "last_failed_at": self.last_failed_at.isoformat(),
            "retry_at": self.retry_at.isoformat() if self.retry_at else None,
            "set_aside": self.set_aside,
        }


@dataclass(frozen=True)
class CaptureStatus:
    triggers: list[tuple[str, str, bool]]  # (trigger, table, enabled)
    queued: int
    oldest_s: float | None
    failed: list[FailedItem] = field(default_factory=list)  # latest 100

    @property
    def installed(self) -> bool:
        return len(self.triggers) == 3

    def as_dict(self) -> JsonObject:
        return {
            "installed": self.installed,
            "triggers": [{"name": n, "table": t, "enabled": e} for n, t, e in self.triggers],
            "queued": self.queued,
            "oldest_pending_s": self.oldest_s,
            "failed": [f.as_dict() for f in self.failed],
        }


def install(conn: psycopg.Connection[Any], source: Source, settings: Settings) -> list[str]:
    """Capture on ``source`` (replacing an earlier install); the watched columns."""
    cols = watched_columns(source, settings)
    with conn.transaction():
        watch_sql.install(conn, source, cols)
    return cols


def uninstall(conn: psycopg.Connection[Any]) -> None:
    """No trigger, function or queue left behind."""
    with conn.transaction():
        watch_sql.uninstall(conn, None, drop_queue=True)


def status(conn: psycopg.Connection[Any]) -> CaptureStatus:
    queued, oldest = watch_sql.depth(conn)
    failed = [FailedItem(*row) for row in watch_sql.failed_items(conn)]
    return CaptureStatus(watch_sql.installed(conn), queued, oldest, failed)


def retry(conn: psycopg.Connection[Any], ids: list[int] | None) -> int:
    """Queue failed items again (``ids``, or all); how many."""
    with conn.transaction():
        return watch_sql.retry(conn, ids)


@dataclass(frozen=True)
class WatchFigures:
    """What /metrics and /health say of continuous sync (summed over every worker)."""

    installed: bool
    queued: int
    oldest_s: float | None
    batches: int = 0
    embedded: int = 0
    refreshed: int = 0
    deleted: int = 0
    errors: int = 0
    lag_sum: float = 0.0
    lag_count: int = 0
    busy_s: float = 0.0
    lag_buckets: tuple[int, ...] = ()
    workers: int = 0  # seen in the last minute
    failed: int = 0  # failed items (retried with backoff, or set aside)
    set_aside: int = 0  # of which out of tries


async def read_figures(conn: psycopg.AsyncConnection[Any]) -> WatchFigures:
    """The queue's depth and age and the workers' counters, on an async connection."""
    cur = await conn.execute(watch_sql.QUEUE_EXISTS, (QUEUE_NAME,))
    found = await cur.fetchone()
    installed = bool(found and found[0])
    queued, oldest = 0, None
    if installed:
        cur = await conn.execute(watch_sql.depth_sql())
        row = await cur.fetchone()
        if row is not None:
            queued, oldest = int(row[0]), (float(row[1]) if row[1] is not None else None)
    cur = await conn.execute(watch_sql.failed_count_sql())
    failed = await cur.fetchone() or (0, 0)
    cur = await conn.execute(watch_sql.totals_sql())
    t = await cur.fetchone()
    assert t is not None
    return WatchFigures(
        installed=installed,
        queued=queued,
        oldest_s=oldest,
        batches=int(t[0]),
        embedded=int(t[1]),
        refreshed=int(t[2]),
        deleted=int(t[3]),
        errors=int(t[4]),
        lag_sum=float(t[5]),
        lag_count=int(t[6]),
        busy_s=float(t[7]),
        lag_buckets=tuple(int(b) for b in (t[8] or ())),
        workers=int(t[9]),
        failed=int(failed[0]),
        set_aside=int(failed[1]),
    )
