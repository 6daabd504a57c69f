"""Continuous sync. Change capture in PostgreSQL, and `prodsearch watch`: every
kind of change reaches search, the result is what a batch `embed` gives, nothing is lost
when a worker is killed or the database restarts, two workers share the queue."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import psycopg
import pytest
from pgvector.psycopg import register_vector_async

from prodsearch.catalog import generate
from prodsearch.catalog.source import load_source
from prodsearch.config import Settings
from prodsearch.db.names import DEMO_CATALOG, EMBEDDINGS_NAME, QUEUE_NAME, WATCH_WORKERS_NAME
from prodsearch.db.nice import renice_backend
from prodsearch.embedding.sync import SyncOptions, sync
from prodsearch.search.results import SearchOptions
from prodsearch.search.setup import build_searcher
from prodsearch.watch import capture
from prodsearch.watch import sql as watch_sql
from prodsearch.watch.worker import WatchOptions, Worker
from tests.conftest import run_cli
from tests.helpers import wait_for
from tests.test_api import make_client
from tests.test_sync import _embeddings

WATCH = [sys.executable, "-m", "prodsearch", "watch"]
WORKERS = WATCH_WORKERS_NAME
DONE = f"SELECT coalesce(sum(embedded + refreshed), 0) FROM {WORKERS}"


def _worker(settings: Settings, encoder: Any, **opts: Any) -> Worker:
    return Worker(
        settings,
        WatchOptions.from_settings(settings, nice=0, once=True, reconcile_s=0, **opts),
        encoder=encoder,
    )


def _queued(conn: psycopg.Connection[Any]) -> int:
    queued, _oldest = watch_sql.depth(conn)
    conn.commit()
    return queued


def assert_batch_agrees(settings: Settings, encoder: Any) -> None:
    """A batch `embed` after the worker finds nothing to write, refresh or delete: the
    worker left exactly the rows and hashes a batch run gives."""
    result = sync(settings, SyncOptions(mode=encoder.mode), encoder=encoder)
    assert (result.scanned, result.to_embed, result.deleted) == (0, 0, 0), result


def _watched_catalog(
    conn: psycopg.Connection[Any], settings: Settings, encoder: Any, products: int, seed: int
) -> None:
    """A generated catalog, embedded, with change capture installed."""
    generate.load(conn, products, seed=seed)
    conn.commit()
    sync(settings, SyncOptions(mode=encoder.mode), encoder=encoder)
    capture.install(conn, load_source(conn, settings), settings)


def _search(searcher: Any, url: str, query: str) -> Any:
    """A hybrid search (explained) through ``searcher``, as the API runs it."""

    async def run() -> Any:
        async with await psycopg.AsyncConnection.connect(url, autocommit=True) as aconn:
            await register_vector_async(aconn)
            if not searcher.understanding.terms:
                await searcher.load_vocabulary(aconn)
            return await searcher.hybrid(aconn, query, SearchOptions(limit=10, explain=True))

    return asyncio.run(run())


def test_every_kind_of_change_reaches_search(
    conn: psycopg.Connection[Any], settings: Settings, db_url: str, encoders: dict[str, Any]
) -> None:
    enc = encoders["int8"]
    _watched_catalog(conn, settings, enc, 300, seed=61)
    # a searcher whose vocabulary is loaded before the changes, as a running API's is
    searcher = build_searcher(conn, settings, enc)
    assert _search(searcher, db_url, "brake pads").ids

    # a price / stock change is read live at query time: nothing is queued
    conn.execute(
        f"UPDATE {DEMO_CATALOG} SET price = price + 1, stock_qty = 3 WHERE product_id < 50"
    )
    conn.commit()
    assert _queued(conn) == 0

    ids = [
        r[0]
        for r in conn.execute(
            f"SELECT product_id FROM {DEMO_CATALOG} WHERE NOT is_deleted ORDER BY 1"
        )
    ]
    conn.execute(
        f"INSERT INTO {DEMO_CATALOG} (product_id, sku, name, description, price, in_stock, "
        "is_deleted) VALUES (900001, 'QX-1', 'Zyntrox QX9000 wiper blade', 'A new part', "
        "10, true, false)"
    )
    conn.execute(
        f"UPDATE {DEMO_CATALOG} SET name = 'Vorlanx gearbox mount' WHERE product_id = %s", (ids[0],)
    )
    conn.execute(
        f"UPDATE {DEMO_CATALOG} SET description = coalesce(description, '') || ' Retuned.' "
        "WHERE product_id = %s",
        (ids[1],),
    )
    conn.execute(f"UPDATE {DEMO_CATALOG} SET is_deleted = true WHERE product_id = %s", (ids[2],))
    conn.execute(f"DELETE FROM {DEMO_CATALOG} WHERE product_id = %s", (ids[3],))
    conn.execute(  # the same product twice: one queue row
        f"UPDATE {DEMO_CATALOG} SET name = name || ' X' WHERE product_id = %s", (ids[4],)
    )
    conn.execute(f"UPDATE {DEMO_CATALOG} SET name = name || ' Y' WHERE product_id = %s", (ids[4],))
    conn.commit()
    assert _queued(conn) == 6

    totals = _worker(settings, enc).run()
    assert _queued(conn) == 0
    assert totals.deleted == 2 and totals.written == 4, totals
    assert_batch_agrees(settings, enc)
    # words new to the catalog are searchable at once, without a vocabulary reload
    new_code = _search(searcher, db_url, "qx9000 wiper")
    assert 900001 in new_code.ids and new_code.explain.dropped == [], new_code.explain
    assert ids[0] in _search(searcher, db_url, "vorlanx").ids
    (gone,) = conn.execute(
        f"SELECT count(*) FROM {EMBEDDINGS_NAME} WHERE product_id = ANY(%s)", ([ids[2], ids[3]],)
    ).fetchone() or (0,)
    assert gone == 0

    # what capture misses (a replica session, as a CDC loader may use) reconciliation finds
    conn.execute("SET session_replication_role = replica")
    conn.execute(
        f"UPDATE {DEMO_CATALOG} SET name = 'Missed rename' WHERE product_id = %s", (ids[5],)
    )
    conn.commit()
    conn.execute("RESET session_replication_role")
    assert _queued(conn) == 0
    missed = Worker(
        settings,
        WatchOptions.from_settings(settings, nice=0, once=True, reconcile_s=1),
        encoder=enc,
    ).run()
    assert missed.reconciliations == 1 and missed.written == 1, missed
    assert_batch_agrees(settings, enc)

    # TRUNCATE of the source empties the embeddings
    conn.execute(f"TRUNCATE {DEMO_CATALOG}")
    conn.commit()
    _worker(settings, enc).run()
    assert _embeddings(db_url) == 0


def test_own_table_and_uninstall_leaves_nothing(
    conn: psycopg.Connection[Any], tmp_path: Path, db_url: str, encoders: dict[str, Any]
) -> None:
    enc = encoders["int8"]
    conn.execute(
        'CREATE TABLE public."My Items" (id bigint primary key, title text, body text, '
        "deleted_at timestamptz, colour text)"
    )
    conn.execute(
        """INSERT INTO public."My Items" VALUES (1, 'Red brake pads', 'x', NULL, 'red'),
        (2, 'Blue brake disc', NULL, NULL, 'blue'), (3, 'Green coolant hose', '', NULL, 'green')"""
    )
    conn.commit()
    settings = Settings(
        home=tmp_path,
        database_url=db_url,
        source_table="public.My Items",
        source_id_column="id",
        text_fields="title,body",
        search_fields="title,body",
        source_deleted="deleted_at IS NOT NULL",
        filter_columns="colour",
    )
    sync(settings, SyncOptions(mode="int8"), encoder=enc)
    source = load_source(conn, settings)
    cols = capture.install(conn, source, settings)
    assert cols == ["id", "title", "body", "deleted_at"]
    conn.execute("UPDATE public.\"My Items\" SET colour = 'teal' WHERE id = 1")  # not watched
    conn.execute('UPDATE public."My Items" SET deleted_at = now() WHERE id = 2')
    conn.execute("UPDATE public.\"My Items\" SET title = 'Green radiator hose' WHERE id = 3")
    conn.execute("INSERT INTO public.\"My Items\" VALUES (4, 'Amber fog lamp', 'y', NULL, 'x')")
    conn.commit()
    assert _queued(conn) == 3
    _worker(settings, enc).run()
    assert_batch_agrees(settings, enc)
    assert sorted(r[0] for r in conn.execute(f"SELECT product_id FROM {EMBEDDINGS_NAME}")) == [
        1,
        3,
        4,
    ]

    capture.uninstall(conn)
    assert watch_sql.installed(conn) == [] and watch_sql.functions_left(conn) == 0
    assert not watch_sql.queue_exists(conn)
    conn.commit()
    # the table works as before, with nothing of prodsearch on it
    conn.execute("INSERT INTO public.\"My Items\" VALUES (5, 'Plain', 'z', NULL, 'x')")
    conn.commit()


def test_sigkilled_worker_loses_nothing_and_two_workers_share(
    conn: psycopg.Connection[Any],
    settings: Settings,
    db_url: str,
    pg_root: Path,
    encoders: dict[str, Any],
) -> None:
    enc = encoders["int8"]
    _watched_catalog(conn, settings, enc, 1200, seed=62)
    env = {
        **os.environ,
        "DATABASE_URL": db_url,
        "PRODSEARCH_HOME": str(pg_root),
        "PRODSEARCH_MODE": "int8",
        "PRODSEARCH_WATCH_BATCH_ROWS": "64",
        "PRODSEARCH_WATCH_RECONCILE_S": "0",
    }

    # 1. a worker SIGKILLed mid-way: its batch rolls back, nothing is lost
    conn.execute(f"UPDATE {DEMO_CATALOG} SET name = name || ' Mk2'")
    conn.commit()
    queued = _queued(conn)
    assert queued > 1000
    proc = subprocess.Popen(WATCH, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_for(lambda: 0 < _queued_at(db_url) < queued - 128, what="two batches done")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    assert 0 < _queued_at(db_url) < queued  # killed mid-way: work left, work done
    done = subprocess.run([*WATCH, "--once"], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert _queued(conn) == 0
    assert_batch_agrees(settings, enc)

    # 2. two workers at once, both running before the change lands: every product is
    # embedded exactly once between them; SIGTERM stops each after its batch
    conn.execute(f"TRUNCATE {WORKERS}")
    conn.commit()
    procs = [
        subprocess.Popen(WATCH, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        for _ in range(2)
    ]
    try:
        wait_for(lambda: _count(db_url, f"SELECT count(*) FROM {WORKERS}") == 2, what="2 workers")
        conn.execute(f"UPDATE {DEMO_CATALOG} SET description = coalesce(description, '') || ' v3'")
        conn.commit()
        changed = _count(db_url, f"SELECT count(*) FROM {DEMO_CATALOG} WHERE NOT is_deleted")
        wait_for(
            lambda: _count(db_url, DONE) >= changed,
            what="every change embedded",
        )
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            _, err = p.communicate(timeout=60)
            assert p.returncode == 0, err.decode()[-2000:]  # a clean stop
    rows = conn.execute(f"SELECT batches, embedded, refreshed FROM {WORKERS}").fetchall()
    conn.commit()
    assert all(r[0] > 0 for r in rows), rows  # both took batches
    # each changed product written once (a text the cap leaves unchanged: its hashes
    # refreshed), never by both workers
    assert sum(r[1] + r[2] for r in rows) == changed, rows
    assert _queued(conn) == 0
    assert_batch_agrees(settings, enc)


def _count(url: str, query: str) -> int:
    with psycopg.connect(url) as c:
        row = c.execute(query).fetchone()
        return int(row[0]) if row else 0


def _queued_at(url: str) -> int:
    return _count(url, f"SELECT count(*) FROM {QUEUE_NAME}")


def test_metrics_health_and_status_show_the_queue(
    conn: psycopg.Connection[Any],
    settings: Settings,
    db_url: str,
    pg_root: Path,
    encoders: dict[str, Any],
) -> None:
    enc = encoders["int8"]
    _watched_catalog(conn, settings, enc, 200, seed=63)
    conn.execute(f"UPDATE {DEMO_CATALOG} SET name = name || ' Q' WHERE product_id % 50 = 0")
    conn.commit()
    queued = _queued(conn)
    assert queued > 0
    with make_client(db_url, pg_root, lag_degraded_s=3600) as client:
        fresh = client.get("/health").json()["freshness"]
        assert fresh["status"] == "ok" and fresh["queued"] == queued
        assert fresh["oldest_pending_s"] >= 0
        text = client.get("/metrics").text
        assert f"prodsearch_watch_queue_depth {float(queued)}" in text
        _worker(settings, enc).run()
        text = client.get("/metrics").text
        assert "prodsearch_watch_queue_depth 0.0" in text
        assert f'prodsearch_watch_lag_seconds_bucket{{le="+Inf"}} {float(queued)}' in text
        assert "prodsearch_watch_embedded_total" in text
    with make_client(db_url, pg_root, lag_degraded_s=0.001) as client:
        conn.execute(f"UPDATE {DEMO_CATALOG} SET name = name || ' R' WHERE product_id % 50 = 0")
        conn.commit()
        wait_for(lambda: client.get("/health").json()["freshness"]["status"] == "degraded")
        res = client.get("/health")
        assert res.status_code == 200  # lag is a field of its own, not a failed check
    res = run_cli("status", "--json", env={"DATABASE_URL": db_url, "PRODSEARCH_HOME": str(pg_root)})
    assert res.returncode == 0, res.stderr
    cap = json.loads(res.stdout)["capture"]
    assert cap["installed"] and cap["queued"] == queued


def _niceness(pid: int) -> int:
    # /proc/PID/stat: the 19th field is the niceness (after the parenthesised command)
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[16])


def test_the_workers_database_session_is_reniced(db_url: str) -> None:
    """The worker's own database session yields the CPU as the worker does, where the
    server runs here and the OS allows it (as root, or as the server's owner)."""
    if not Path("/proc/self/stat").exists():
        pytest.skip("needs Linux /proc")
    with psycopg.connect(db_url) as conn:
        pid = conn.info.backend_pid
        before = _niceness(pid)
        owner = Path(f"/proc/{pid}").stat().st_uid
        allowed = os.geteuid() in (0, owner) and before + 5 <= 19
        assert renice_backend(conn, 5) is allowed
        assert _niceness(pid) == (before + 5 if allowed else before)
        assert renice_backend(conn, 0) is False  # nothing asked, nothing done
        conn.execute("SELECT 1")  # the session still answers
    with psycopg.connect(db_url) as other:  # other sessions keep their priority
        assert _niceness(other.info.backend_pid) == before


REJECT_TRIGGER = """
CREATE FUNCTION reject_one() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.product_id = %(pid)s THEN RAISE EXCEPTION 'rejected by a site rule'; END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER reject_one BEFORE INSERT OR UPDATE ON analytics_features.product_embeddings
  FOR EACH ROW EXECUTE FUNCTION reject_one();
"""


def test_a_product_that_cannot_be_written_is_set_aside_and_the_queue_flows(
    conn: psycopg.Connection[Any], settings: Settings, db_url: str, encoders: dict[str, Any]
) -> None:
    """Failed items: a trigger on the embeddings table rejects one product; the worker
    retries it alone with backoff, sets it aside, keeps embedding the changes behind it,
    never exits, and shows it in watch status, status, /metrics and /health; `watch
    retry` embeds it once the cause is gone."""
    enc = encoders["int8"]
    _watched_catalog(conn, settings, enc, 200, seed=83)
    ids = [
        r[0]
        for r in conn.execute(
            f"SELECT product_id FROM {DEMO_CATALOG} WHERE NOT is_deleted ORDER BY 1 LIMIT 4"
        )
    ]
    bad, *good = ids
    conn.execute(REJECT_TRIGGER.replace("%(pid)s", str(int(bad))))
    conn.execute(  # the rejected product first: the oldest change in the queue
        f"UPDATE {DEMO_CATALOG} SET name = name || ' v2' WHERE product_id = %s", (bad,)
    )
    conn.commit()
    conn.execute(
        f"UPDATE {DEMO_CATALOG} SET name = name || ' v2' WHERE product_id = ANY(%s)", (good,)
    )
    conn.commit()
    worker = Worker(
        settings,
        WatchOptions.from_settings(
            settings, nice=0, once=True, reconcile_s=0, max_tries=3, retry_s=0
        ),
        encoder=enc,
    )
    totals = worker.run()  # returns: it never exits on the product
    assert totals.failed == 3 and totals.written == len(good), totals
    assert _queued(conn) == 0
    names = dict(
        conn.execute(
            f"SELECT product_id, s.name FROM {DEMO_CATALOG} AS s WHERE product_id = ANY(%s)",
            (good,),
        )
    )
    conn.commit()
    assert all(n.endswith(" v2") for n in names.values())
    assert_later = _embeddings(db_url)
    assert (
        assert_later
        == 200 - conn.execute(f"SELECT count(*) FROM {DEMO_CATALOG} WHERE is_deleted").fetchone()[0]
    )  # type: ignore[index]
    conn.commit()

    status = json.loads(run_cli("watch", "status", "--json", env=_env(db_url)).stdout)
    (failed,) = status["failed"]
    assert failed["product_id"] == bad and failed["tries"] == 3 and failed["set_aside"]
    assert "rejected by a site rule" in failed["error"]
    report = json.loads(run_cli("status", "--json", env=_env(db_url)).stdout)
    assert [f["product_id"] for f in report["capture"]["failed"]] == [bad]
    with make_client(db_url, settings.home) as client:
        assert "prodsearch_watch_failed_items 1.0" in client.get("/metrics").text
        fresh = client.get("/health").json()["freshness"]
        assert fresh["failed_items"] == 1 and fresh["set_aside"] == 1

    # the cause removed, a retry embeds it; a change would have requeued it too
    conn.execute("DROP TRIGGER reject_one ON analytics_features.product_embeddings")
    conn.commit()
    res = run_cli("watch", "retry", "--all", env=_env(db_url))
    assert res.returncode == 0 and "1 failed item(s) queued again" in res.stdout, res.stderr
    again = Worker(
        settings,
        WatchOptions.from_settings(settings, nice=0, once=True, reconcile_s=0),
        encoder=enc,
    ).run()
    assert again.written == 1 and again.failed == 0
    assert json.loads(run_cli("watch", "status", "--json", env=_env(db_url)).stdout)["failed"] == []
    assert_batch_agrees(settings, enc)


def _env(db_url: str) -> dict[str, str]:
    return {"DATABASE_URL": db_url}


def test_a_batch_encodes_in_large_steps_and_ends_in_small_ones() -> None:
    """Every text of a batch is in exactly one step; steps stay within the large size, and
    the last (whose write nothing overlaps) is small however large the batch."""
    from prodsearch.watch.worker import ENCODE_CHUNK, LAST_CHUNK, chunk_sizes

    assert chunk_sizes(0) == []
    for n in range(1, 5000, 7):
        sizes = chunk_sizes(n)
        assert sum(sizes) == n and all(0 < s <= ENCODE_CHUNK for s in sizes)
        assert sizes[-1] <= LAST_CHUNK
        if n >= 4 * ENCODE_CHUNK:
            assert sizes[0] == ENCODE_CHUNK
    assert chunk_sizes(2048) == [512, 512, 512, 256, 128, 128]
