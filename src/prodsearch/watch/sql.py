"""SQL of continuous sync — one place: the capture trigger on the source table (install,
uninstall, what is installed), the queue of changed ids, and the workers' counters.

The trigger writes the changed product id into ``embedding_queue`` (one row per product:
``ON CONFLICT DO NOTHING`` keeps the oldest pending change, whose age is the lag) and
wakes listeners with ``NOTIFY``. Its functions are ``SECURITY DEFINER``: whoever writes
the catalog needs no privilege on the queue.

Why a change is never lost: a worker *deletes* its batch's queue rows first (one
statement, ``FOR UPDATE SKIP LOCKED``), then reads the source rows, then writes, then
commits. A change committed while the batch is in flight finds the deleted-but-uncommitted
queue row, waits for the batch's commit on the unique index, and then inserts a fresh
row: the product is taken again. A killed batch rolls back and its rows are pending again.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import psycopg
from psycopg import sql

from prodsearch.catalog.source import Source
from prodsearch.db.names import (
    CAPTURE_FUNCTION,
    CAPTURE_TRIGGERS,
    CAPTURE_TRUNCATE_FUNCTION,
    EMBEDDINGS,
    FAILED_ITEMS,
    QUEUE,
    QUEUE_CHANNEL,
    QUEUE_NAME,
    WATCH_WORKERS,
)

RUN_LOCK_SHARED = "SELECT pg_try_advisory_xact_lock_shared(%s)"
QUEUE_EXISTS = "SELECT to_regclass(%s) IS NOT NULL"


def install(conn: psycopg.Connection[Any], source: Source, columns: Sequence[str]) -> None:
    """(Re)create the capture functions and the three triggers on ``source``: inserts and
    deletes, updates that change any of ``columns`` (the id included), and TRUNCATE
    (every embedded product is queued: the worker finds them gone). Not committed."""
    rows_t, update_t, truncate_t = (sql.Identifier(t) for t in CAPTURE_TRIGGERS)
    ident = sql.Identifier(source.id_column)
    watched = sql.SQL(", ").join(sql.Identifier(c) for c in columns)
    old = sql.SQL(", ").join(sql.SQL("OLD.{}").format(sql.Identifier(c)) for c in columns)
    new = sql.SQL(", ").join(sql.SQL("NEW.{}").format(sql.Identifier(c)) for c in columns)
    uninstall(conn, source)
    # one row per product: repeated changes coalesce, and the oldest pending change's
    # time is kept, so its age is the lag
    conn.execute(
        sql.SQL(
            "CREATE TABLE IF NOT EXISTS {q} (product_id BIGINT PRIMARY KEY, "
            "enqueued_at TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp())"
        ).format(q=QUEUE)
    )
    conn.execute(
        sql.SQL("CREATE INDEX IF NOT EXISTS {i} ON {q} (enqueued_at)").format(
            i=sql.Identifier("idx_embedding_queue_enqueued"), q=QUEUE
        )
    )
    conn.execute(
        sql.SQL(
            "CREATE FUNCTION {fn}() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER "
            "SET search_path = pg_catalog, pg_temp AS $fn$ BEGIN "
            " IF TG_OP <> 'INSERT' THEN "
            "  INSERT INTO {queue} (product_id) VALUES (OLD.{id}) ON CONFLICT DO NOTHING; "
            " END IF; "
            " IF TG_OP <> 'DELETE' THEN "
            "  INSERT INTO {queue} (product_id) VALUES (NEW.{id}) ON CONFLICT DO NOTHING; "
            " END IF; "
            " PERFORM pg_notify({channel}, ''); "
            " RETURN NULL; "
            "END $fn$"
        ).format(fn=CAPTURE_FUNCTION, queue=QUEUE, id=ident, channel=sql.Literal(QUEUE_CHANNEL))
    )
    conn.execute(
        sql.SQL(
            "CREATE FUNCTION {fn}() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER "
            "SET search_path = pg_catalog, pg_temp AS $fn$ BEGIN "
            " INSERT INTO {queue} (product_id) SELECT product_id FROM {emb} "
            "  ON CONFLICT DO NOTHING; "
            " PERFORM pg_notify({channel}, ''); "
            " RETURN NULL; "
            "END $fn$"
        ).format(
            fn=CAPTURE_TRUNCATE_FUNCTION,
            queue=QUEUE,
            emb=EMBEDDINGS,
            channel=sql.Literal(QUEUE_CHANNEL),
        )
    )
    conn.execute(
        sql.SQL(
            "CREATE TRIGGER {t} AFTER INSERT OR DELETE ON {src} "
            "FOR EACH ROW EXECUTE FUNCTION {fn}()"
        ).format(t=rows_t, src=source.qualified, fn=CAPTURE_FUNCTION)
    )
    conn.execute(
        sql.SQL(
            "CREATE TRIGGER {t} AFTER UPDATE OF {watched} ON {src} FOR EACH ROW "
            "WHEN (({old}) IS DISTINCT FROM ({new})) EXECUTE FUNCTION {fn}()"
        ).format(
            t=update_t,
            watched=watched,
            src=source.qualified,
            old=old,
            new=new,
            fn=CAPTURE_FUNCTION,
        )
    )
    conn.execute(
        sql.SQL(
            "CREATE TRIGGER {t} AFTER TRUNCATE ON {src} FOR EACH STATEMENT EXECUTE FUNCTION {fn}()"
        ).format(t=truncate_t, src=source.qualified, fn=CAPTURE_TRUNCATE_FUNCTION)
    )


def uninstall(
    conn: psycopg.Connection[Any], source: Source | None, drop_queue: bool = False
) -> None:
    """Drop the triggers (from ``source``; from whatever table holds them when None), the
    capture functions, and with ``drop_queue`` the queue. Not committed."""
    tables = [source.qualified] if source is not None else []
    tables += [sql.Identifier(schema, table) for _t, schema, table, _on in _triggers(conn)]
    for table in tables:
        for name in CAPTURE_TRIGGERS:
            conn.execute(
                sql.SQL("DROP TRIGGER IF EXISTS {} ON {}").format(sql.Identifier(name), table)
            )
    for fn in (CAPTURE_FUNCTION, CAPTURE_TRUNCATE_FUNCTION):
        conn.execute(sql.SQL("DROP FUNCTION IF EXISTS {}()").format(fn))
    if drop_queue:
        conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(QUEUE))


def queue_exists(conn: psycopg.Connection[Any]) -> bool:
    row = conn.execute(QUEUE_EXISTS, (QUEUE_NAME,)).fetchone()
    return bool(row and row[0])


def _triggers(conn: psycopg.Connection[Any]) -> list[tuple[str, str, str, bool]]:
    """(trigger, schema, table, enabled) of every capture trigger in the database."""
    rows = conn.execute(
        "SELECT t.tgname, n.nspname, c.relname, t.tgenabled <> 'D' FROM pg_trigger t "
        "JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE t.tgname = ANY(%s) ORDER BY 1",
        (list(CAPTURE_TRIGGERS),),
    ).fetchall()
    return [(str(t), str(schema), str(table), bool(on)) for t, schema, table, on in rows]


def installed(conn: psycopg.Connection[Any]) -> list[tuple[str, str, bool]]:
    """(trigger, schema.table, enabled) of every capture trigger in the database."""
    return [(t, f"{schema}.{table}", on) for t, schema, table, on in _triggers(conn)]


def functions_left(conn: psycopg.Connection[Any]) -> int:
    """How many capture functions exist (0 after uninstall)."""
    row = conn.execute(
        "SELECT count(*) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
        "WHERE p.proname IN ('prodsearch_capture', 'prodsearch_capture_truncate')"
    ).fetchone()
    return int(row[0]) if row else 0


# ---------------------------------------------------------------- the queue


def listen(conn: psycopg.Connection[Any]) -> None:
    """Subscribe an autocommit connection to the queue's notifications."""
    conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(QUEUE_CHANNEL)))


def enqueue(conn: psycopg.Connection[Any], ids: Sequence[int]) -> int:
    """Queue ``ids`` by hand (reconciliation, tests); the number newly queued."""
    cur = conn.execute(
        sql.SQL(
            "INSERT INTO {} (product_id) SELECT unnest(%s::bigint[]) ON CONFLICT DO NOTHING"
        ).format(QUEUE),
        (list(ids),),
    )
    conn.execute(sql.SQL("SELECT pg_notify({}, '')").format(sql.Literal(QUEUE_CHANNEL)))
    return cur.rowcount


def take(conn: psycopg.Connection[Any], limit: int) -> list[tuple[int, datetime]]:
    """Inside the batch's transaction: remove up to ``limit`` queued ids, oldest first,
    skipping those another worker holds; (id, enqueued_at)."""
    # the batch is chosen once, in a CTE (materialised): as a subquery of IN the planner
    # may rescan it, and each rescan under SKIP LOCKED yields other rows — a batch far
    # larger than ``limit`` (seen: 10,000 ids for a limit of 512)
    rows = conn.execute(
        sql.SQL(
            "WITH batch AS MATERIALIZED (SELECT product_id FROM {q} ORDER BY enqueued_at "
            "LIMIT %s FOR UPDATE SKIP LOCKED) "
            "DELETE FROM {q} AS q USING batch WHERE q.product_id = batch.product_id "
            "RETURNING q.product_id, q.enqueued_at"
        ).format(q=QUEUE),
        (limit,),
    ).fetchall()
    return [(int(pid), at) for pid, at in rows]


def try_run_lock_shared(conn: psycopg.Connection[Any], key: int) -> bool:
    """The run lock, shared, for this transaction: batches of many workers go together,
    and none runs while an ``embed`` holds the lock exclusively."""
    row = conn.execute(RUN_LOCK_SHARED, (key,)).fetchone()
    return bool(row and row[0])


def server_now(conn: psycopg.Connection[Any]) -> datetime:
    row = conn.execute("SELECT clock_timestamp()").fetchone()
    assert row is not None
    value: datetime = row[0]
    return value


def depth(conn: psycopg.Connection[Any]) -> tuple[int, float | None]:
    """Pending changes, and the age in seconds of the oldest (None when empty; 0 and None
    when capture is not installed)."""
    if not queue_exists(conn):
        return 0, None
    row = conn.execute(depth_sql()).fetchone()
    assert row is not None
    return int(row[0]), (float(row[1]) if row[1] is not None else None)


def depth_sql() -> sql.Composed:
    """:func:`depth` as a statement, for async callers (the API)."""
    return sql.SQL(
        "SELECT count(*), extract(epoch FROM clock_timestamp() - min(enqueued_at)) FROM {}"
    ).format(QUEUE)


# ---------------------------------------------------------------- workers' counters


def record_batch(
    conn: psycopg.Connection[Any],
    worker: str,
    written: int,
    refreshed: int,
    deleted: int,
    lag_buckets: Sequence[int],
    lag_sum: float,
    lag_count: int,
    busy_s: float,
) -> None:
    """Add one batch to the worker's counters (in the batch's transaction)."""
    conn.execute(
        sql.SQL(
            "INSERT INTO {w} AS w (worker_id, batches, embedded, refreshed, deleted, lag_buckets, "
            "lag_sum, lag_count, busy_s) "
            "VALUES (%(w)s, 1, %(e)s, %(r)s, %(d)s, %(b)s, %(s)s, %(n)s, %(busy)s) "
            "ON CONFLICT (worker_id) DO UPDATE SET heartbeat_at = now(), "
            "batches = w.batches + 1, embedded = w.embedded + %(e)s, "
            "refreshed = w.refreshed + %(r)s, "
            "deleted = w.deleted + %(d)s, lag_sum = w.lag_sum + %(s)s, "
            "lag_count = w.lag_count + %(n)s, busy_s = w.busy_s + %(busy)s, "
            "lag_buckets = CASE WHEN cardinality(w.lag_buckets) = cardinality(%(b)s::bigint[]) "
            " THEN ARRAY(SELECT a + b FROM unnest(w.lag_buckets, %(b)s::bigint[]) AS u(a, b)) "
            " ELSE %(b)s::bigint[] END"
        ).format(w=WATCH_WORKERS),
        {
            "w": worker,
            "e": written,
            "r": refreshed,
            "d": deleted,
            "b": list(lag_buckets),
            "s": lag_sum,
            "n": lag_count,
            "busy": busy_s,
        },
    )


def record_error(conn: psycopg.Connection[Any], worker: str) -> None:
    conn.execute(
        sql.SQL(
            "INSERT INTO {w} AS w (worker_id, errors) VALUES (%s, 1) ON CONFLICT (worker_id) "
            "DO UPDATE SET errors = w.errors + 1, heartbeat_at = now()"
        ).format(w=WATCH_WORKERS),
        (worker,),
    )


def start_worker(conn: psycopg.Connection[Any], worker: str) -> None:
    """A fresh row for this worker (a restarted worker under the same host:pid starts at
    zero, as Prometheus counters do)."""
    conn.execute(sql.SQL("DELETE FROM {} WHERE worker_id = %s").format(WATCH_WORKERS), (worker,))
    conn.execute(sql.SQL("INSERT INTO {} (worker_id) VALUES (%s)").format(WATCH_WORKERS), (worker,))


def record_reconciliation(conn: psycopg.Connection[Any], worker: str) -> None:
    conn.execute(
        sql.SQL("UPDATE {} SET reconciled_at = now() WHERE worker_id = %s").format(WATCH_WORKERS),
        (worker,),
    )


def reconciled_since(conn: psycopg.Connection[Any], since: datetime) -> int:
    """Workers whose reconciliation ended at or after ``since``."""
    row = conn.execute(
        sql.SQL("SELECT count(*) FROM {} WHERE reconciled_at >= %s").format(WATCH_WORKERS),
        (since,),
    ).fetchone()
    return int(row[0]) if row else 0


def totals_sql() -> sql.Composed:
    """One row: the workers' summed counters (batches, embedded, refreshed, deleted,
    errors, lag_sum, lag_count, busy_s), their summed lag buckets, and workers seen in
    the last minute."""
    return sql.SQL(
        "SELECT coalesce(sum(batches), 0), coalesce(sum(embedded), 0), "
        "coalesce(sum(refreshed), 0), coalesce(sum(deleted), 0), coalesce(sum(errors), 0), "
        "coalesce(sum(lag_sum), 0), "
        "coalesce(sum(lag_count), 0), coalesce(sum(busy_s), 0), "
        "(SELECT array_agg(s ORDER BY i) FROM (SELECT i, sum(b) AS s FROM {w}, "
        " unnest(lag_buckets) WITH ORDINALITY AS u(b, i) GROUP BY i) AS x), "
        "count(*) FILTER (WHERE heartbeat_at > now() - interval '1 minute') FROM {w}"
    ).format(w=WATCH_WORKERS)


# ---------------------------------------------------------------- failed items


def take_one(conn: psycopg.Connection[Any], pid: int) -> datetime | None:
    """Inside a transaction: remove one queued id (None when it is gone or another worker
    holds it); its enqueued_at."""
    row = conn.execute(
        sql.SQL(
            "WITH one AS MATERIALIZED (SELECT product_id FROM {q} WHERE product_id = %s"
            " FOR UPDATE SKIP LOCKED) DELETE FROM {q} AS q USING one"
            " WHERE q.product_id = one.product_id RETURNING q.enqueued_at"
        ).format(q=QUEUE),
        (pid,),
    ).fetchone()
    return None if row is None else row[0]


def record_failure(
    conn: psycopg.Connection[Any], pid: int, error: str, max_tries: int, retry_s: float
) -> int:
    """Count a failed try of one product (its queue row is gone): retried after
    ``retry_s`` × 2^(tries − 1) seconds, set aside after ``max_tries``; the tries so far."""
    row = conn.execute(
        sql.SQL(
            "INSERT INTO {f} AS f (product_id, tries, error) VALUES (%(pid)s, 1, %(error)s)"
            " ON CONFLICT (product_id) DO UPDATE SET tries = f.tries + 1, error = %(error)s,"
            " last_failed_at = clock_timestamp() RETURNING tries"
        ).format(f=FAILED_ITEMS),
        {"pid": pid, "error": error[:2000]},
    ).fetchone()
    tries = int(row[0]) if row else 1
    conn.execute(
        sql.SQL(
            "UPDATE {f} SET set_aside = %(aside)s, retry_at = CASE WHEN %(aside)s THEN NULL"
            " ELSE clock_timestamp() + make_interval(secs => %(wait)s) END"
            " WHERE product_id = %(pid)s"
        ).format(f=FAILED_ITEMS),
        {"pid": pid, "aside": tries >= max_tries, "wait": retry_s * 2 ** (tries - 1)},
    )
    return tries


def clear_failures(conn: psycopg.Connection[Any], ids: Sequence[int]) -> None:
    """Products written at last are no failed items any more."""
    conn.execute(
        sql.SQL("DELETE FROM {} WHERE product_id = ANY(%s)").format(FAILED_ITEMS), (list(ids),)
    )


def requeue_due(conn: psycopg.Connection[Any]) -> int:
    """Queue the failed items whose retry time has come; how many."""
    rows = conn.execute(
        sql.SQL(
            "WITH due AS (UPDATE {f} SET retry_at = NULL WHERE NOT set_aside"
            " AND retry_at <= clock_timestamp() RETURNING product_id)"
            " INSERT INTO {q} (product_id) SELECT product_id FROM due ON CONFLICT DO NOTHING"
        ).format(f=FAILED_ITEMS, q=QUEUE)
    )
    return rows.rowcount


def retry(conn: psycopg.Connection[Any], ids: Sequence[int] | None) -> int:
    """Queue failed items again (``ids``, or every one), out of the set-aside state; how
    many."""
    rows = conn.execute(
        sql.SQL(
            "WITH again AS (UPDATE {f} SET set_aside = false, retry_at = NULL"
            " WHERE %(all)s OR product_id = ANY(%(ids)s) RETURNING product_id)"
            " INSERT INTO {q} (product_id) SELECT product_id FROM again"
            " ON CONFLICT DO NOTHING"
        ).format(f=FAILED_ITEMS, q=QUEUE),
        {"all": ids is None, "ids": list(ids or [])},
    )
    conn.execute(sql.SQL("SELECT pg_notify({}, '')").format(sql.Literal(QUEUE_CHANNEL)))
    return rows.rowcount


def failed_items(conn: psycopg.Connection[Any], limit: int = 100) -> list[tuple[Any, ...]]:
    """(product_id, tries, error, first, last, retry_at, set_aside), latest failure first."""
    return conn.execute(
        sql.SQL(
            "SELECT product_id, tries, error, first_failed_at, last_failed_at, retry_at,"
            " set_aside FROM {} ORDER BY last_failed_at DESC LIMIT %s"
        ).format(FAILED_ITEMS),
        (limit,),
    ).fetchall()


def failed_count_sql() -> sql.Composed:
    """Failed items, and how many of them are set aside."""
    return sql.SQL("SELECT count(*), count(*) FILTER (WHERE set_aside) FROM {}").format(
        FAILED_ITEMS
    )
