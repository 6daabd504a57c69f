"""`prodsearch embed --engine ray` on a local Ray instance (2 CPUs): the same
rows, hashes and (exact mode) vectors as the local engine, and a killed Ray run resumes
to the same result."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import psycopg

from prodsearch.catalog import generate
from prodsearch.config import Settings
from prodsearch.db import hnsw
from prodsearch.db.names import EMBEDDINGS_NAME
from prodsearch.embedding.sync import SyncOptions, sync
from tests.helpers import wait_for
from tests.test_sync import _embeddings, assert_in_sync

RAY_EMBED = [
    sys.executable,
    "-m",
    "prodsearch",
    "embed",
    "--engine",
    "ray",
    "--workers",
    "2",
    "--chunk-size",
    "32",
    "--quiet",
    "--json",
]
ROWS = (
    "SELECT product_id, content_hash, source_hash, embedding::real[] "
    f"FROM {EMBEDDINGS_NAME} ORDER BY product_id"
)


def _rows(conn: psycopg.Connection[Any]) -> list[tuple[Any, ...]]:
    return conn.execute(ROWS).fetchall()


def _run_ray(env: dict[str, str], *extra: str) -> dict[str, Any]:
    done = subprocess.run(
        [*RAY_EMBED, *extra], env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout)


def _same(local: list[tuple[Any, ...]], ray: list[tuple[Any, ...]], min_cos: float) -> None:
    assert [r[:3] for r in local] == [r[:3] for r in ray]  # ids, content and source hashes
    a = np.array([r[3] for r in local], dtype=np.float32)
    b = np.array([r[3] for r in ray], dtype=np.float32)
    cos = (a * b).sum(axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    assert cos.min() >= min_cos, cos.min()


def test_ray_engine_equals_local_and_resumes_after_a_kill(
    conn: psycopg.Connection[Any],
    settings: Settings,
    db_url: str,
    pg_root: Path,
    encoders: dict[str, Any],
) -> None:
    generate.load(conn, 320, seed=51)
    conn.commit()
    env = {**os.environ, "DATABASE_URL": db_url, "PRODSEARCH_HOME": str(pg_root)}
    local = sync(settings, SyncOptions(mode="exact"), encoder=encoders["exact"])
    assert local.status == "succeeded"
    expected = _rows(conn)
    conn.execute(f"TRUNCATE {EMBEDDINGS_NAME}")
    conn.commit()

    # a Ray run killed mid-way (driver, its actors and its local Ray) keeps what it
    # committed; the run that resumes it writes only the rest, its actors encoding in the
    # run's batch size (--batch-size) and timing their stages apart. Together they store
    # the local engine's rows and hashes, and vectors within 0.9999 of its own.
    proc = subprocess.Popen(
        [*RAY_EMBED, "--mode", "exact"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # its own process group: the kill takes Ray down too
    )
    try:
        wait_for(lambda: _embeddings(db_url) >= 100, timeout=300, what="100 rows from Ray")
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    kept = _embeddings(db_url)
    assert 100 <= kept < len(expected)
    resumed = _run_ray(env, "--mode", "exact", "--batch-size", "7")
    assert resumed["status"] == "succeeded"
    assert 0 < resumed["written"] <= len(expected) - kept  # it kept what was committed
    assert resumed["batch_sizes"] == [7], resumed["batch_sizes"]
    timings = resumed["timings"]
    assert timings["encode_s"] > 0 and timings["write_s"] > 0 and timings["tokenize_s"] > 0
    _same(expected, _rows(conn), 0.9999)
    assert hnsw.status(conn).valid
    assert_in_sync(conn, settings, "exact")
