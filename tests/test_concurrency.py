"""A killed import converges to a clean one; two embeds at once equal one run;
search keeps answering while the index is rebuilt; the typo vocabulary's writers take
turns."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from prodsearch.catalog import generate
from prodsearch.config import Settings
from prodsearch.db import hnsw
from prodsearch.db.names import DEMO_CATALOG, EMBEDDINGS_NAME, TERMS_NAME
from prodsearch.embedding import lexical_sql, runs_sql
from tests.conftest import TEMPLATE_DB, run_cli
from tests.helpers import wait_for
from tests.test_api import make_client
from tests.test_sync import EMBED_INT8, assert_in_sync

ROWS = 60_000
# every imported column but updated_at (the time of the write)
TABLE_SUM = (
    "SELECT count(*), md5(string_agg(concat_ws('|', product_id, sku, name, description, "
    "price, stock_qty, in_stock, brand, is_deleted), '#' ORDER BY product_id)) "
    f"FROM {DEMO_CATALOG}"
)


def _feed(path: Path) -> Path:
    with path.open("w", encoding="utf-8") as fh:
        fh.write("id,sku,title,description,price,stock_qty,brand\n")
        for i in range(1, ROWS + 1):
            price = "abc" if i % 997 == 0 else f"{(i % 500) + 0.99:.2f}"  # some rejects
            fh.write(f'{i},SKU-{i},Part {i},"Desc, {i}",{price},{i % 7},Brand{i % 13}\n')
    return path


def _count(url: str) -> int:
    with psycopg.connect(url) as c:
        row = c.execute(f"SELECT count(*) FROM {DEMO_CATALOG}").fetchone()
        return int(row[0]) if row else 0


def test_killed_import_reruns_to_a_clean_import(db_url: str, tmp_path: Path) -> None:
    feed = _feed(tmp_path / "feed.csv")
    cmd = [sys.executable, "-m", "prodsearch", "catalog", "import", str(feed)]
    cmd += ["--map", "product_id=id", "--map", "name=title"]
    env = {**os.environ, "DATABASE_URL": db_url, "PRODSEARCH_HOME": str(tmp_path / "h")}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_for(lambda: _count(db_url) >= ROWS // 4, what="a quarter of the file imported")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    assert 0 < _count(db_url) < ROWS  # killed mid-file
    rerun = subprocess.run([*cmd, "--json"], env=env, capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr
    summary = json.loads(rerun.stdout)
    assert summary["read"] == ROWS and summary["unchanged"] > 0  # it kept what was written
    # the same file into an empty database, uninterrupted
    clean = make_conninfo(db_url, dbname=conninfo_to_dict(db_url)["dbname"] + "_clean")
    with psycopg.connect(make_conninfo(db_url, dbname="postgres"), autocommit=True) as c:
        c.execute(f"CREATE DATABASE {conninfo_to_dict(clean)['dbname']} TEMPLATE {TEMPLATE_DB}")
    try:
        env_clean = {**env, "DATABASE_URL": clean}
        once = subprocess.run([*cmd, "--json"], env=env_clean, capture_output=True, text=True)
        assert once.returncode == 0, once.stderr
        assert json.loads(once.stdout)["rejected"] == summary["rejected"] > 0
        with psycopg.connect(db_url) as a, psycopg.connect(clean) as b:
            assert a.execute(TABLE_SUM).fetchone() == b.execute(TABLE_SUM).fetchone()
    finally:
        with psycopg.connect(make_conninfo(db_url, dbname="postgres"), autocommit=True) as c:
            c.execute(f"DROP DATABASE IF EXISTS {conninfo_to_dict(clean)['dbname']} WITH (FORCE)")


def test_two_embeds_at_once_equal_one_run(
    conn: psycopg.Connection[Any], settings: Settings, db_url: str, pg_root: Path
) -> None:
    generate.load(conn, 700, seed=41)
    conn.commit()
    env = {**os.environ, "DATABASE_URL": db_url, "PRODSEARCH_HOME": str(pg_root)}
    cmd = [*EMBED_INT8, "--json"]
    procs = [
        subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for _ in range(2)
    ]
    results = [p.communicate(timeout=600) for p in procs]
    assert all(p.returncode == 0 for p in procs), [r[1] for r in results]
    written = sorted(json.loads(out)["written"] for out, _ in results)
    eligible = conn.execute(f"SELECT count(*) FROM {DEMO_CATALOG} WHERE NOT is_deleted").fetchone()[
        0
    ]
    assert written == [0, eligible]  # the second waited, then found nothing left to do
    assert any(b"waiting" in err for _, err in results)
    assert_in_sync(conn, settings, "int8")
    # a run that may not wait says so in one line
    conn.execute("SELECT pg_advisory_lock(%s)", (runs_sql.SYNC_LOCK_KEY,))
    try:
        res = run_cli("embed", "--mode", "int8", env={**env, "PRODSEARCH_LOCK_WAIT_S": "0"})
    finally:
        conn.execute("SELECT pg_advisory_unlock(%s)", (runs_sql.SYNC_LOCK_KEY,))
        conn.commit()
    assert res.returncode == 1
    assert (
        res.stderr.strip()
        .splitlines()[-1]
        .startswith("error: another embed run is still in progress")
    )


def test_search_answers_while_the_index_is_rebuilt(search_db: str, pg_root: Path) -> None:
    """`index build` (drop, then build) under a stream of searches: searches answer while
    the index is missing (exact scan) and while it is built, and the index ends valid."""
    env = {"DATABASE_URL": search_db, "PRODSEARCH_HOME": str(pg_root)}
    statuses: list[int] = []
    done = threading.Event()
    with make_client(search_db, pg_root) as client:

        def search() -> None:
            while not done.is_set():
                res = client.post("/search/semantic", json={"query": "brake pads", "limit": 5})
                statuses.append(res.status_code)

        worker = threading.Thread(target=search)
        worker.start()
        try:
            for _ in range(2):
                assert run_cli("index", "drop", env=env).returncode == 0
                answered = len(statuses)
                # three more searches answered, and the index still missing meanwhile
                wait_for(lambda n=answered: len(statuses) >= n + 3, what="searches, no index")
                with psycopg.connect(search_db) as c:
                    assert not hnsw.status(c).exists
                assert set(statuses[answered:]) == {200}, statuses[answered:]
                built = run_cli("index", "build", env=env)
                assert built.returncode == 0, built.stderr
        finally:
            done.set()
            worker.join(timeout=30)
    assert len(statuses) >= 10 and set(statuses) == {200}, statuses
    with psycopg.connect(search_db) as c:
        assert hnsw.status(c).valid


def test_a_concurrent_rebuild_blocks_neither_searches_nor_writes(
    search_db: str, pg_root: Path
) -> None:
    """`index build --concurrently`: while the new graph is built (held at its last step by
    an open snapshot), searches answer and a write to the embeddings table gets its lock
    at once — a plain build holds the table for its whole length. The new graph then
    replaces the old under the index's name, with the build's and the inserts'
    ef_construction, and nothing of the rebuild is left. (The shared database's index is
    built as before at the end.)"""
    env = {
        **os.environ,
        "DATABASE_URL": search_db,
        "PRODSEARCH_HOME": str(pg_root),
        "PRODSEARCH_HNSW_EF_CONSTRUCTION": "200",
        "PRODSEARCH_HNSW_INSERT_EF_CONSTRUCTION": "100",
    }
    names = f"SELECT relname FROM pg_class WHERE relname LIKE '{hnsw.INDEX_NAME}%' ORDER BY 1"
    with (
        psycopg.connect(search_db) as conn,
        psycopg.connect(search_db) as holder,
        make_client(search_db, pg_root) as client,
    ):
        holder.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        holder.execute(f"SELECT count(*) FROM {EMBEDDINGS_NAME}").fetchone()  # a snapshot
        proc = subprocess.Popen(
            [sys.executable, "-m", "prodsearch", "index", "build", "--concurrently"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            wait_for(
                lambda: hnsw.REBUILD_NAME in {r[0] for r in conn.execute(names).fetchall()},
                what="the new graph being built",
            )
            conn.commit()
            for _ in range(3):
                res = client.post("/search/semantic", json={"query": "brake pads", "limit": 5})
                assert res.status_code == 200 and res.json()["count"] == 5, res.text
            conn.execute("SET lock_timeout = '2s'")
            conn.execute(
                f"UPDATE {EMBEDDINGS_NAME} SET source_hash = source_hash "
                f"WHERE product_id = (SELECT min(product_id) FROM {EMBEDDINGS_NAME})"
            )
            conn.commit()
            assert proc.poll() is None, "the build finished before the searches and the write"
            holder.commit()
            out, err = proc.communicate(timeout=120)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        assert proc.returncode == 0, err[-2000:]
        res = client.post("/search/semantic", json={"query": "brake pads", "limit": 5})
        assert res.status_code == 200 and res.json()["count"] == 5, res.text
        assert "ef_construction=200" in out and "inserts at 100" in out, out
        st = hnsw.status(conn)
        assert st.valid and st.ready
        assert (st.ef_construction, st.insert_ef_construction) == (200, 100)
        assert [r[0] for r in conn.execute(names).fetchall()] == [hnsw.INDEX_NAME]
    shared = {"DATABASE_URL": search_db, "PRODSEARCH_HOME": str(pg_root)}
    assert run_cli("index", "build", env=shared).returncode == 0


def _rebuild_waits_for(holder: psycopg.Connection[Any], url: str, what: str) -> None:
    """A vocabulary rebuild on a connection of its own, in a thread: it must wait for
    ``holder``'s open transaction, then finish without an error once that commits."""
    errors: list[BaseException] = []

    def rebuild() -> None:
        try:
            with psycopg.connect(url) as conn:
                lexical_sql.rebuild_terms(conn)
                conn.commit()
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=rebuild)
    thread.start()
    thread.join(1.0)
    assert thread.is_alive(), f"the rebuild did not wait for {what}"
    holder.commit()
    thread.join(60)
    assert not errors, errors


def _terms(url: str) -> dict[str, int]:
    with psycopg.connect(url) as conn:
        return dict(conn.execute(f"SELECT term, ndoc FROM {TERMS_NAME}").fetchall())


def test_two_vocabulary_rebuilds_at_once_take_turns(search_db: str) -> None:
    """Two watch workers refreshing the search terms together (each on its own
    connection, beside the batches): the second waits for the first, then replaces its
    rows; neither fails."""
    before = _terms(search_db)
    with psycopg.connect(search_db) as first:
        lexical_sql.rebuild_terms(first)  # its transaction open: its new rows uncommitted
        _rebuild_waits_for(first, search_db, "the first rebuild")
    assert _terms(search_db) == before


def test_a_batch_adding_words_during_a_rebuild_fails_neither(search_db: str) -> None:
    """A batch's new words (committed while a rebuild's swap waits for them) meet the
    rebuild's upsert, not a duplicate key."""
    before = _terms(search_db)
    with psycopg.connect(search_db) as conn:
        word, pid = conn.execute(
            f"SELECT t.term, e.product_id FROM {TERMS_NAME} AS t JOIN"
            f" {EMBEDDINGS_NAME} AS e"
            " ON e.search_tsv @@ to_tsquery('simple', quote_literal(t.term))"
            " WHERE t.ndoc = 1 ORDER BY t.term LIMIT 1"
        ).fetchone() or (None, None)
        assert word is not None
        conn.execute(f"DELETE FROM {TERMS_NAME} WHERE term = %s", (word,))
        conn.commit()
    with psycopg.connect(search_db) as batch:
        assert lexical_sql.add_terms_of(batch, [pid]) >= 1  # uncommitted: holds the word
        _rebuild_waits_for(batch, search_db, "the batch's new word")
    assert _terms(search_db) == before
