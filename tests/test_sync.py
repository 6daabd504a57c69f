"""The sync pipeline against a real database and the real model."""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
import pytest
from pgvector.psycopg import register_vector, register_vector_async

from prodsearch.catalog import generate
from prodsearch.catalog.source import load_source
from prodsearch.catalog.text import content_hash, prepare_text
from prodsearch.config import Settings
from prodsearch.db import hnsw, text_indexes
from prodsearch.db.names import DEMO_CATALOG, EMBEDDINGS_NAME, RUNS_NAME, TERMS_NAME
from prodsearch.embedding import load_encoder
from prodsearch.embedding.encoder import hash_cap
from prodsearch.embedding.model import resolve_model
from prodsearch.embedding.sync import SyncOptions, sync
from prodsearch.errors import ProdsearchError
from prodsearch.search.results import SearchOptions
from prodsearch.search.setup import build_searcher
from tests.conftest import run_cli
from tests.helpers import wait_for

# `prodsearch embed` in a subprocess, small chunks so that kills land between commits
EMBED_INT8 = [
    sys.executable,
    "-m",
    "prodsearch",
    "embed",
    "--mode",
    "int8",
    "--quiet",
    "--chunk-size",
    "64",
]


def expected_state(
    conn: psycopg.Connection[Any], settings: Settings, model: str, mode: str
) -> dict[int, str]:
    """product_id -> content hash that a complete sync must have stored."""
    source = load_source(conn, settings)
    rows = conn.execute(
        f"SELECT product_id, name, description FROM {DEMO_CATALOG} WHERE NOT is_deleted"
    ).fetchall()
    out = {}
    for pid, name, desc in rows:
        text = prepare_text({"name": name, "description": desc}, source.text_columns)
        out[pid] = content_hash(text, model, mode, hash_cap(settings))
    return out


def expected_texts(conn: psycopg.Connection[Any], settings: Settings) -> dict[int, str]:
    """product_id -> the prepared text a complete sync embeds."""
    source = load_source(conn, settings)
    rows = conn.execute(
        f"SELECT product_id, name, description FROM {DEMO_CATALOG} WHERE NOT is_deleted"
    ).fetchall()
    return {
        pid: prepare_text({"name": n, "description": d}, source.text_columns) for pid, n, d in rows
    }


def stored_state(conn: psycopg.Connection[Any]) -> dict[int, str]:
    return dict(conn.execute(f"SELECT product_id, content_hash FROM {EMBEDDINGS_NAME}").fetchall())


def assert_in_sync(conn: psycopg.Connection[Any], settings: Settings, mode: str) -> None:
    model = "sentence-transformers/all-MiniLM-L6-v2"
    assert stored_state(conn) == expected_state(conn, settings, model, mode)
    (modes,) = conn.execute(f"SELECT array_agg(DISTINCT mode) FROM {EMBEDDINGS_NAME}").fetchone()
    assert modes == [mode]


def test_full_then_incremental(
    conn: psycopg.Connection[Any], settings: Settings, encoders: dict[str, Any]
) -> None:
    generate.load(conn, 800, seed=5)
    enc = encoders["int8"]
    first = sync(settings, SyncOptions(mode="int8", chunk_size=128), encoder=enc)
    conn.commit()
    assert first.status == "succeeded" and first.index == "built"
    assert first.written == first.eligible == first.embedded + first.deduplicated
    assert first.deduplicated > 0  # the generator repeats texts across variants
    assert_in_sync(conn, settings, "int8")
    st = hnsw.status(conn)
    assert st.exists and st.valid and (st.m, st.ef_construction) == (16, 64)  # sized: 800 rows
    run = conn.execute(
        "SELECT status, embedded, deduplicated, eligible, timings FROM "
        f"{RUNS_NAME} WHERE run_id = %s",
        (first.run_id,),
    ).fetchone()
    assert run[0] == "succeeded" and run[1] == first.embedded and run[3] == first.eligible
    assert {"plan_s", "encode_s", "write_s", "index_s", "total_s"} <= set(run[4])

    # change 5, soft-delete 3, hard-delete 2, add 4, whitespace-only change 1
    ids = [
        r[0]
        for r in conn.execute(
            f"SELECT product_id FROM {DEMO_CATALOG} WHERE NOT is_deleted ORDER BY 1 LIMIT 15"
        )
    ]
    conn.execute(
        f"UPDATE {DEMO_CATALOG} SET description = 'Changed text ' || product_id "
        "WHERE product_id = ANY(%s)",
        (ids[:5],),
    )
    conn.execute(
        f"UPDATE {DEMO_CATALOG} SET is_deleted = true WHERE product_id = ANY(%s)",
        (ids[5:8],),
    )
    conn.execute(f"DELETE FROM {DEMO_CATALOG} WHERE product_id = ANY(%s)", (ids[8:10],))
    conn.execute(
        f"UPDATE {DEMO_CATALOG} SET name = '  ' || name || '  ' WHERE product_id = %s",
        (ids[10],),
    )
    conn.execute(
        f"INSERT INTO {DEMO_CATALOG} (product_id, name, description) VALUES "
        "(1, 'New pads A', 'd'), (2, 'New pads B', NULL), (3, 'New pads A', 'd'), (4, 'Disc', 'x')"
    )
    conn.commit()
    second = sync(settings, SyncOptions(mode="int8"), encoder=enc)
    conn.commit()
    assert (second.written, second.embedded, second.deduplicated) == (9, 8, 1)
    assert second.deleted == 5 and second.index == "kept"
    assert second.skipped_unchanged == second.eligible - 9
    assert second.scanned == 10  # 5 changed + 1 whitespace + 4 new; the rest skipped in SQL
    assert_in_sync(conn, settings, "int8")
    register_vector(conn)
    a, b = (
        r[0]
        for r in conn.execute(
            f"SELECT embedding FROM {EMBEDDINGS_NAME} "
            "WHERE product_id IN (1, 3) ORDER BY product_id"
        )
    )
    assert np.array_equal(a, b)
    third = sync(settings, SyncOptions(mode="int8"), encoder=enc)
    assert (third.scanned, third.written, third.deleted) == (0, 0, 0)
    log = (settings.logs_dir / "embedding_pipeline.log").read_text()
    assert f"run {first.run_id} batch 1: product ids" in log and "rows upserted" in log


def test_live_inserts_search_a_narrower_list_than_the_build(
    conn: psycopg.Connection[Any], settings: Settings, encoders: dict[str, Any]
) -> None:
    """The graph is built with the build's ef_construction; later writes search with the
    configured inserts' one (pgvector reads it from the index options at each insert),
    and status reports both."""
    generate.load(conn, 300, seed=9)
    conn.commit()
    wide = settings.model_copy(
        update={"hnsw_ef_construction": 200, "hnsw_insert_ef_construction": 48}
    )
    sync(wide, SyncOptions(mode="int8"), encoder=encoders["int8"])
    st = hnsw.status(conn)
    assert (st.ef_construction, st.insert_ef_construction) == (200, 48)
    # an index built without it (an older one) is brought to the setting by the next embed
    hnsw.build(conn, "halfvec", 16, 200)
    conn.commit()
    st = hnsw.status(conn)
    assert (st.ef_construction, st.insert_ef_construction) == (200, 200)
    pid = conn.execute(f"SELECT min(product_id) FROM {DEMO_CATALOG}").fetchone()[0]
    conn.execute(
        f"UPDATE {DEMO_CATALOG} SET name = 'Zebra wiper blade' WHERE product_id = %s", (pid,)
    )
    conn.commit()
    result = sync(wide, SyncOptions(mode="int8"), encoder=encoders["int8"])
    assert result.written == 1
    st = hnsw.status(conn)
    assert (st.ef_construction, st.insert_ef_construction) == (200, 48)
    # and a setting of 0 takes the inserts back to the build's
    back = wide.model_copy(update={"hnsw_insert_ef_construction": 0})
    sync(back, SyncOptions(mode="int8"), encoder=encoders["int8"])
    st = hnsw.status(conn)
    assert (st.ef_construction, st.insert_ef_construction) == (200, 200)
    # never wider than the build: a setting above it leaves inserts at the build's
    assert hnsw.insert_ef_for(64, 128) == 64 and hnsw.insert_ef_for(384, 0) == 384


def test_mode_change_dry_run_and_limit(
    conn: psycopg.Connection[Any], settings: Settings, encoders: dict[str, Any]
) -> None:
    generate.load(conn, 300, seed=6)
    part = sync(settings, SyncOptions(mode="int8", limit=100), encoder=encoders["int8"])
    assert part.written == 100
    dry = sync(settings, SyncOptions(mode="exact", dry_run=True), encoder=encoders["exact"])
    conn.commit()
    assert dry.status == "dry-run" and dry.run_id is None
    assert dry.to_embed == dry.eligible  # a mode change re-embeds everything
    assert len(stored_state(conn)) == 100  # nothing changed
    conn.commit()  # a reader's open transaction would hold the bulk path's DROP INDEX
    full = sync(settings, SyncOptions(mode="exact"), encoder=encoders["exact"])
    conn.commit()
    assert full.written == full.eligible
    assert_in_sync(conn, settings, "exact")
    # rewriting every row takes the bulk path: index dropped, rows written, built once
    assert part.index == "built" and full.index == "rebuilt" and full.timings.index_s is not None
    st = hnsw.status(conn)
    assert st.exists and st.valid
    # the full-text and code GIN indexes too: dropped for the bulk load, built at its end
    assert full.timings.text_index_s is not None and text_indexes.missing(conn) == []
    # a run killed between the drop and the build leaves them missing: the next run,
    # even one with nothing to embed, builds them
    text_indexes.drop(conn)
    conn.commit()
    again = sync(settings, SyncOptions(mode="exact"), encoder=encoders["exact"])
    conn.commit()
    assert again.written == 0 and again.timings.text_index_s is not None
    assert text_indexes.missing(conn) == []


def test_dimension_change_needs_full_refresh(
    conn: psycopg.Connection[Any], settings: Settings, encoders: dict[str, Any]
) -> None:
    generate.load(conn, 50, seed=8)
    conn.execute(f"ALTER TABLE {EMBEDDINGS_NAME} ALTER COLUMN embedding TYPE vector(8)")
    conn.commit()
    with pytest.raises(ProdsearchError, match="--full-refresh"):
        sync(settings, SyncOptions(mode="int8"), encoder=encoders["int8"])
    res = sync(settings, SyncOptions(mode="int8", full_refresh=True), encoder=encoders["int8"])
    conn.commit()
    assert res.written == res.eligible
    assert_in_sync(conn, settings, "int8")


def test_token_cap_cuts_the_text_and_re_embeds(
    conn: psycopg.Connection[Any], settings: Settings, models_dir: Path
) -> None:
    """A token cap below the model's limit embeds each text cut at the cap (the name
    first, so the description is what is shortened), is part of the content hash, and a
    change of it re-embeds every product."""
    generate.load(conn, 120, seed=12)
    uncapped = settings.model_copy(update={"max_tokens": 256})
    full = load_encoder("exact", models_dir=models_dir, max_tokens=256)
    sync(uncapped, SyncOptions(mode="exact"), encoder=full)
    conn.commit()
    capped = settings.model_copy(update={"max_tokens": 24})
    cut = load_encoder("exact", models_dir=models_dir, max_tokens=24)
    assert (cut.max_tokens, cut.hash_cap, full.hash_cap) == (24, 24, None)
    dry = sync(capped, SyncOptions(mode="exact", dry_run=True), encoder=cut)
    assert dry.to_embed == dry.eligible  # every hash names the cap
    res = sync(capped, SyncOptions(mode="exact"), encoder=cut)
    conn.commit()
    assert res.written == res.eligible
    texts = expected_texts(conn, capped)
    register_vector(conn)
    stored = dict(
        conn.execute(f"SELECT product_id, content_hash FROM {EMBEDDINGS_NAME}").fetchall()
    )
    model = full.model_name
    assert stored == {pid: content_hash(t, model, "exact", 24) for pid, t in texts.items()}
    long_pid = max(texts, key=lambda pid: len(texts[pid]))
    ids = full.tokenize([texts[long_pid]])[0]
    assert len(ids) > 24 and cut.tokenize([texts[long_pid]])[0] == ids[:23] + ids[-1:]
    (vec,) = conn.execute(
        f"SELECT embedding FROM {EMBEDDINGS_NAME} WHERE product_id = %s", (long_pid,)
    ).fetchone()
    want = full.encode_ids([ids[:23] + ids[-1:]])[0]
    assert float(np.dot(vec.to_numpy(), want)) > 0.9999
    assert float(np.dot(vec.to_numpy(), full.encode([texts[long_pid]])[0])) < 0.999
    conn.commit()  # a reader's open transaction would hold the bulk path's DROP INDEX
    # back to the model's limit: the hashes are the uncapped ones again
    again = sync(uncapped, SyncOptions(mode="exact"), encoder=full)
    conn.commit()
    assert again.written == again.eligible
    assert_in_sync(conn, uncapped, "exact")


def _embeddings(url: str) -> int:
    with psycopg.connect(url) as c:
        return c.execute(f"SELECT count(*) FROM {EMBEDDINGS_NAME}").fetchone()[0]


# the kill points are drawn from this seed (set PRODSEARCH_KILL_SEED to try others)
KILL_SEED = int(os.environ.get("PRODSEARCH_KILL_SEED", "1313"))


def test_resume_after_sigkill_at_seeded_random_points(
    conn: psycopg.Connection[Any],
    settings: Settings,
    db_url: str,
    pg_root: Path,
    encoders: dict[str, Any],
) -> None:
    """SIGKILL `prodsearch embed` at six points drawn from a seed — during planning, three
    while encoding and writing, during the index build, during the search-support refresh —
    then a rerun: the same rows and hashes as one uninterrupted run, the vectors the
    encoder gives those texts, a valid index, every killed run recorded."""
    generate.load(conn, 1600, seed=9)
    conn.commit()
    env = {**os.environ, "DATABASE_URL": db_url, "PRODSEARCH_HOME": str(pg_root)}
    texts = expected_texts(conn, settings)
    eligible = len(texts)
    rng = random.Random(KILL_SEED)
    # three marks, one drawn in each third of the rows, at least 200 rows apart (a kill
    # lands up to a chunk past its mark, and the next run must still have rows to write)
    third = (eligible - 400) // 3
    marks = [100 + i * third + rng.randrange(third - 200) for i in range(3)]

    def stage(name: str) -> Callable[[], None]:
        """Wait for the running run to enter step ``name`` (its own signal)."""
        return lambda: wait_for(lambda: _running_stage(db_url) == name, what=name)

    # (label, wait for the moment, the stage the killed run must have been in; None: the
    # run is killed as soon as its row exists, and must have written nothing)
    kill_points: list[tuple[str, Callable[[], None], str | None]] = [
        ("planning", lambda: None, None),
        *[
            (
                f"writing, at {m} rows",
                lambda m=m: wait_for(lambda: _embeddings(db_url) >= m),
                "embed",
            )
            for m in marks
        ],
        ("index build", lambda: wait_for(lambda: _building_index(db_url)), "index"),
        # a run with nothing left to write but the index: killed while it refreshes the
        # term vocabulary and fits the query map
        ("search support", stage("search support"), "search support"),
    ]
    before_planning = _embeddings(db_url)
    for killed, (label, wait, _stage) in enumerate(kill_points):
        proc = subprocess.Popen(EMBED_INT8, env=env, stdout=subprocess.DEVNULL)
        try:
            wait_for(lambda n=killed: _runs(db_url, None) > n)  # this run has started
            wait()
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=30)
        assert proc.returncode == -signal.SIGKILL, label
        if _stage is None:  # killed before its first chunk was written
            assert _embeddings(db_url) == before_planning
        else:  # the killed run's row says where it stopped
            assert _last_stage(db_url) == _stage, label
    done = subprocess.run(
        [*EMBED_INT8, "--json"], env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["status"] == "succeeded"
    assert_in_sync(conn, settings, "int8")  # same rows, same hashes
    assert hnsw.status(conn).valid
    stored = dict(conn.execute(f"SELECT product_id, embedding::real[] FROM {EMBEDDINGS_NAME}"))
    ids = sorted(texts)
    fresh = encoders["int8"].encode([texts[i] for i in ids])
    got = np.array([stored[i] for i in ids], dtype=np.float32)
    cosines = (fresh * got).sum(axis=1) / (
        np.linalg.norm(fresh, axis=1) * np.linalg.norm(got, axis=1)
    )
    # int8 quantizes activations per batch, and a resumed run batches differently:
    # within int8's own tolerance against exact (test_encoder: mean 0.985, min 0.95)
    assert cosines.mean() >= 0.985 and cosines.min() >= 0.95, (cosines.mean(), cosines.min())
    statuses = [r[0] for r in conn.execute(f"SELECT status FROM {RUNS_NAME} ORDER BY run_id")]
    assert statuses[-1] == "succeeded" and "running" not in statuses
    assert statuses.count("interrupted") == len(kill_points), statuses
    stages = [
        r[0]
        for r in conn.execute(
            f"SELECT stage FROM {RUNS_NAME} WHERE status = 'interrupted' ORDER BY run_id"
        )
    ]
    assert stages[1:] == [p[2] for p in kill_points[1:]], stages


def _building_index(url: str) -> bool:
    """CREATE INDEX in progress on this database (or already done: the poll missed it)."""
    with psycopg.connect(url) as c:
        row = c.execute(
            "SELECT EXISTS (SELECT FROM pg_stat_progress_create_index "
            "WHERE datname = current_database()) OR EXISTS (SELECT FROM pg_indexes "
            "WHERE indexname = 'idx_product_embeddings_hnsw')"
        ).fetchone()
        return bool(row and row[0])


def _running_stage(url: str) -> str | None:
    """The step of the run in progress (None: none is running)."""
    with psycopg.connect(url) as c:
        row = c.execute(f"SELECT stage FROM {RUNS_NAME} WHERE status = 'running'").fetchone()
        return str(row[0]) if row else None


def _last_stage(url: str) -> str | None:
    """The step the newest run was in."""
    with psycopg.connect(url) as c:
        row = c.execute(f"SELECT stage FROM {RUNS_NAME} ORDER BY run_id DESC LIMIT 1").fetchone()
        return str(row[0]) if row else None


def _runs(url: str, status: str | None) -> int:
    """Runs recorded with ``status``, or all runs (a run row exists from the moment
    planning starts)."""
    with psycopg.connect(url) as c:
        row = c.execute(
            f"SELECT count(*) FROM {RUNS_NAME} WHERE status = coalesce(%s, status)",
            (status,),
        ).fetchone()
        return int(row[0]) if row else 0


def test_search_works_during_embed(
    conn: psycopg.Connection[Any],
    settings: Settings,
    db_url: str,
    pg_root: Path,
    encoders: dict[str, Any],
) -> None:
    generate.load(conn, 1600, seed=10)
    conn.commit()
    sync(settings, SyncOptions(mode="int8", limit=500), encoder=encoders["int8"])
    env = {**os.environ, "DATABASE_URL": db_url, "PRODSEARCH_HOME": str(pg_root)}
    proc = subprocess.Popen(
        EMBED_INT8,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    searcher = build_searcher(conn, settings, encoders["int8"])  # as the API builds it

    async def search_while_embedding() -> int:
        answered = 0
        async with await psycopg.AsyncConnection.connect(db_url, autocommit=True) as aconn:
            await register_vector_async(aconn)
            await searcher.load_vocabulary(aconn)
            while proc.poll() is None and answered < 50:
                resp = await searcher.semantic(aconn, "front brake pads", SearchOptions(limit=10))
                assert resp.count == 10
                answered += 1
                await asyncio.sleep(0.05)
        return answered

    try:
        wait_for(lambda: _embeddings(db_url) > 600)
        answered = asyncio.run(search_while_embedding())
    finally:
        _, stderr = proc.communicate(timeout=600)
    assert proc.returncode == 0, stderr
    assert answered >= 5
    assert_in_sync(conn, settings, "int8")


def test_cli_embed_json_and_index_commands(
    db_url: str, pg_root: Path, conn: psycopg.Connection[Any]
) -> None:
    generate.load(conn, 200, seed=11)
    conn.commit()
    env = {"DATABASE_URL": db_url, "PRODSEARCH_HOME": str(pg_root)}
    dry = run_cli("embed", "--mode", "int8", "--dry-run", env=env)
    assert dry.returncode == 0 and "would be embedded" in dry.stdout
    res = run_cli("embed", "--mode", "int8", env=env)
    assert res.returncode == 0, res.stderr
    assert "writing took" in res.stdout and "index built" in res.stdout
    st = json.loads(run_cli("index", "status", "--json", env=env).stdout)
    assert st["exists"] and st["name"] == "idx_product_embeddings_hnsw" and st["valid"]
    assert run_cli("index", "drop", env=env).stdout.startswith("dropped")
    assert "not built" in run_cli("index", "status", env=env).stdout
    assert "built idx_product_embeddings_hnsw" in run_cli("index", "build", env=env).stdout


def test_lexemes_follow_the_source_without_re_encoding(
    conn: psycopg.Connection[Any], settings: Settings, encoders: dict[str, Any]
) -> None:
    """A Polish name change refreshes the full-text lexemes (Polish stems, folded) and the
    term vocabulary; the vector is kept. So does a change of the analysis itself."""
    generate.load(conn, 60, seed=12)
    first = sync(settings, SyncOptions(mode="int8"), encoder=encoders["int8"])
    assert first.status == "succeeded"
    pid = conn.execute(f"SELECT product_id FROM {EMBEDDINGS_NAME} ORDER BY 1 LIMIT 1").fetchone()[0]
    conn.execute(
        f"UPDATE {DEMO_CATALOG} SET polish_name = %s WHERE product_id = %s",
        ("Sprężyny żółwia", pid),
    )
    conn.commit()
    again = sync(settings, SyncOptions(mode="int8"), encoder=encoders["int8"])
    conn.commit()
    assert again.embedded == 0 and again.written == 0
    hit = conn.execute(
        f"SELECT product_id FROM {EMBEDDINGS_NAME} "
        "WHERE search_tsv @@ to_tsquery('simple', 'zolw & sprezyn')"
    ).fetchall()
    assert hit == [(pid,)]
    terms = {r[0] for r in conn.execute(f"SELECT term FROM {TERMS_NAME}")}
    assert {"zolwia", "sprezyny"} <= terms
    # an analysis change (simulated: every stored raw hash forgotten) rewrites the lexemes
    conn.execute(f"UPDATE {EMBEDDINGS_NAME} SET source_hash = NULL, search_tsv = NULL")
    conn.commit()
    third = sync(settings, SyncOptions(mode="int8"), encoder=encoders["int8"])
    conn.commit()
    assert third.embedded == 0
    missing = conn.execute(
        f"SELECT count(*) FROM {EMBEDDINGS_NAME} WHERE search_tsv IS NULL"
    ).fetchone()[0]
    assert missing == 0


def test_first_embed_quiet_is_silent(
    conn: psycopg.Connection[Any], db_url: str, pg_root: Path, tmp_path: Path
) -> None:
    """A first run exports the ONNX model (its tools configure logging on the way); with
    --quiet nothing reaches stderr — no per-batch INFO lines, no export chatter. The model
    is a local sentence-transformers directory (PRODSEARCH_MODEL), recorded as such."""
    bundled = resolve_model().path
    local = tmp_path / "my-model"
    for file in bundled.rglob("*"):
        if file.is_file():
            dest = local / file.relative_to(bundled)
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.symlink_to(file)
    generate.load(conn, 300, seed=12)
    conn.commit()
    env = {
        "DATABASE_URL": db_url,
        "PRODSEARCH_HOME": str(pg_root),
        "PRODSEARCH_MODEL_CACHE": str(tmp_path / "fresh-models"),
        "PRODSEARCH_MODEL": str(local),
    }
    res = run_cli("embed", "--mode", "int8", "--quiet", "--chunk-size", "64", env=env)
    assert res.returncode == 0, res.stderr
    assert (tmp_path / "fresh-models").is_dir()  # the export happened in this run
    assert res.stderr.strip() == "", res.stderr[-2000:]
    assert "embed run" in res.stdout
    models = conn.execute(f"SELECT DISTINCT model_name FROM {EMBEDDINGS_NAME}").fetchall()
    assert models == [(str(local.resolve()),)]
