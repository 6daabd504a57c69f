"""Outages of the real database, under a running API and a running embed.

These tests stop and start a PostgreSQL server of their own (the session's shared server
keeps running for the other tests).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg.conninfo import make_conninfo

from prodsearch.catalog import generate
from prodsearch.config import Settings
from prodsearch.db import hnsw, migrate, server
from prodsearch.db.names import DEMO_CATALOG, EMBEDDINGS_NAME, RUNS_NAME
from prodsearch.embedding import store
from prodsearch.embedding.sync import SyncOptions, sync
from tests.helpers import wait_for
from tests.test_api import make_client
from tests.test_sync import EMBED_INT8, assert_in_sync


class OwnServer:
    """A private embedded PostgreSQL that a test may stop and start."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.data = home / "pg"
        admin = server.start(self.data)
        with psycopg.connect(admin, autocommit=True) as c:
            c.execute("CREATE DATABASE outage")
        self.url = make_conninfo(admin, dbname="outage")
        with psycopg.connect(self.url) as c:
            migrate(c)

    def stop(self) -> None:
        assert server.stop(self.data)

    def start(self) -> None:
        server.start(self.data)

    def count(self, sql: str) -> int:
        """A count, or -1 while the server is down."""
        try:
            with psycopg.connect(self.url, connect_timeout=2) as c:
                row = c.execute(sql).fetchone()
                return int(row[0]) if row else 0
        except psycopg.OperationalError:
            return -1


@pytest.fixture(scope="module")
def own_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OwnServer]:
    srv = OwnServer(tmp_path_factory.mktemp("own-pg"))
    try:
        yield srv
    finally:
        server.stop(srv.data)


EMBEDDINGS = f"SELECT count(*) FROM {EMBEDDINGS_NAME}"


def test_embed_rides_out_a_restart_and_stops_cleanly_past_its_budget(
    own_server: OwnServer, tmp_path: Path
) -> None:
    with psycopg.connect(own_server.url) as c:
        c.execute(f"TRUNCATE {DEMO_CATALOG}, {EMBEDDINGS_NAME}")
        generate.load(c, 1600, seed=31)
    env = {
        **os.environ,
        "DATABASE_URL": own_server.url,
        "PRODSEARCH_HOME": str(tmp_path),
        "PRODSEARCH_DB_RETRY_S": "2",
    }
    # 1. the database goes away for longer than the retry budget: one clear line, exit 1
    proc = subprocess.Popen(EMBED_INT8, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_for(lambda: own_server.count(EMBEDDINGS) >= 300, what="300 embeddings")
        own_server.stop()
        _, stderr_b = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    stderr = stderr_b.decode()
    assert proc.returncode == 1, stderr
    assert "Traceback" not in stderr
    last = stderr.strip().splitlines()[-1]
    assert last.startswith("error: the database was unreachable for 2 s while writing"), last
    assert "run the same command again" in last
    own_server.start()
    kept = own_server.count(EMBEDDINGS)
    assert kept >= 300  # every committed chunk survived
    with psycopg.connect(own_server.url) as c:  # … and none half-written
        assert store.count_altered(c) == 0
        (incomplete,) = c.execute(
            f"SELECT count(*) FROM {EMBEDDINGS_NAME} WHERE content_hash IS NULL "
            "OR source_hash IS NULL OR search_tsv IS NULL"
        ).fetchone() or (0,)
        assert incomplete == 0

    # 2. a rerun with room to wait: the database restarts mid-run and the run finishes
    env["PRODSEARCH_DB_RETRY_S"] = "60"
    proc = subprocess.Popen(
        [*EMBED_INT8, "--json"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        wait_for(lambda: own_server.count(EMBEDDINGS) >= kept + 200, what="progress")
        own_server.stop()
        time.sleep(1.5)
        own_server.start()
        out, err = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err.decode()[-2000:]
    assert "retrying" in err.decode()
    assert json.loads(out)["status"] == "succeeded"
    with psycopg.connect(own_server.url) as c:
        settings = Settings(home=tmp_path, database_url=own_server.url)
        assert_in_sync(c, settings, "int8")
        assert hnsw.status(c).valid
        statuses = [r[0] for r in c.execute(f"SELECT status FROM {RUNS_NAME}")]
    assert statuses.count("succeeded") == 1 and "running" not in statuses


def test_api_answers_503_while_the_database_restarts_then_recovers(
    own_server: OwnServer, tmp_path: Path, encoders: dict[str, Any]
) -> None:
    with psycopg.connect(own_server.url) as c:
        if own_server.count(EMBEDDINGS) < 100:
            generate.load(c, 300, seed=32)
    settings = Settings(home=tmp_path, database_url=own_server.url)
    sync(settings, SyncOptions(mode="int8"), encoder=encoders["int8"])
    timeout = 2.0
    with make_client(own_server.url, tmp_path, request_timeout_s=timeout) as client:
        body = {"query": "front brake pads", "limit": 5}
        assert client.post("/search/semantic", json=body).status_code == 200
        own_server.stop()
        try:
            for path in ("/search/semantic", "/search/hybrid"):
                # an answer, never a hang: the request is given far longer than the
                # configured timeout, and must come back with a 503 inside it
                with ThreadPoolExecutor(1) as pool:
                    res = pool.submit(client.post, path, json=body).result(timeout=120)
                assert res.status_code == 503, (path, res.text)
                # our words only: no pool, driver or SQL text in the body
                assert res.json() in (
                    {"error": "database unavailable"},
                    {"error": "database timed out"},
                ), res.text
            res = client.get("/search/similar/1")
            assert res.status_code == 503
            health = client.get("/health")
            assert health.status_code == 503 and health.json()["database"] == "unreachable"
            assert health.json()["error"] == "the database did not answer; see the server log"
        finally:
            own_server.start()
        # the same API process, no restart: the pool reconnects by itself
        wait_for(
            lambda: client.post("/search/semantic", json=body).status_code == 200,
            timeout=30,
            what="search answering again",
        )
        assert client.get("/health").status_code == 200
        assert len(client.post("/search/hybrid", json=body).json()["results"]) == 5


def test_watch_rides_out_a_database_restart(
    own_server: OwnServer, tmp_path: Path, encoders: dict[str, Any]
) -> None:
    """A `prodsearch watch` worker keeps running through a database restart: a change made
    after the restart is embedded, and a SIGTERM stops it cleanly."""
    from prodsearch.catalog.source import load_source
    from prodsearch.watch import capture
    from tests.test_watch import WATCH, WORKERS, assert_batch_agrees

    with psycopg.connect(own_server.url) as c:
        c.execute(f"TRUNCATE {DEMO_CATALOG}, {EMBEDDINGS_NAME}")
        generate.load(c, 300, seed=33)
    settings = Settings(home=tmp_path, database_url=own_server.url)
    sync(settings, SyncOptions(mode="int8"), encoder=encoders["int8"])
    with psycopg.connect(own_server.url) as c:
        capture.install(c, load_source(c, settings), settings)
        c.execute(f"TRUNCATE {WORKERS}")
    env = {
        **os.environ,
        "DATABASE_URL": own_server.url,
        "PRODSEARCH_HOME": str(tmp_path),
        "PRODSEARCH_MODE": "int8",
        "PRODSEARCH_DB_RETRY_S": "120",
        "PRODSEARCH_WATCH_POLL_S": "1",
        "PRODSEARCH_WATCH_RECONCILE_S": "0",
    }
    proc = subprocess.Popen(WATCH, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_for(lambda: own_server.count(f"SELECT count(*) FROM {WORKERS}") == 1, what="worker")
        own_server.stop()
        time.sleep(1.5)
        own_server.start()
        with psycopg.connect(own_server.url) as c:
            c.execute(f"UPDATE {DEMO_CATALOG} SET name = name || ' R' WHERE NOT is_deleted")
            c.commit()
            (changed,) = c.execute(
                f"SELECT count(*) FROM {DEMO_CATALOG} WHERE NOT is_deleted"
            ).fetchone() or (0,)
        wait_for(
            lambda: (
                own_server.count(f"SELECT coalesce(sum(embedded), 0) FROM {WORKERS}") >= changed
            ),
            what="the changes after the restart embedded",
        )
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err.decode()[-2000:]
    assert_batch_agrees(settings, encoders["int8"])
