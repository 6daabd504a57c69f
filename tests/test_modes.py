"""One catalog, one encoder mode: the first embed records it, every later process (a
worker with another default, the API, status) uses it, and a process told another mode
either switches the catalog (``embed``) or refuses in one line (a worker) — never a mix."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from prodsearch.catalog import generate
from prodsearch.catalog.source import load_source
from prodsearch.config import Settings
from prodsearch.db.names import DEMO_CATALOG, EMBEDDINGS_NAME
from prodsearch.embedding import modes
from prodsearch.embedding.sync import SyncOptions, sync
from prodsearch.ops.status import report
from prodsearch.watch import capture
from prodsearch.watch.worker import WatchOptions, Worker
from tests.conftest import run_cli


def _stored_modes(url: str) -> dict[str, int]:
    with psycopg.connect(url) as c:
        return dict(c.execute(f"SELECT mode, count(*) FROM {EMBEDDINGS_NAME} GROUP BY mode"))


def _rename(conn: psycopg.Connection[Any], nth: int, name: str) -> None:
    """Rename the ``nth`` live product of the demo catalog (a change capture queues)."""
    conn.execute(
        f"UPDATE {DEMO_CATALOG} SET name = %s WHERE product_id = (SELECT product_id FROM "
        f"{DEMO_CATALOG} WHERE NOT is_deleted ORDER BY product_id OFFSET %s LIMIT 1)",
        (name, nth),
    )
    conn.commit()


def _live(conn: psycopg.Connection[Any]) -> int:
    row = conn.execute(f"SELECT count(*) FROM {DEMO_CATALOG} WHERE NOT is_deleted").fetchone()
    conn.commit()
    assert row is not None
    return int(row[0])


def _int8_catalog(
    conn: psycopg.Connection[Any], settings: Settings, encoder: Any, products: int, seed: int
) -> None:
    """A generated catalog embedded in int8 (recorded), with change capture installed."""
    generate.load(conn, products, seed=seed)
    conn.commit()
    sync(settings, SyncOptions(mode="int8"), encoder=encoder)
    capture.install(conn, load_source(conn, settings), settings)
    conn.commit()


def test_the_cpu_decides_a_first_embeds_mode() -> None:
    amx = modes.choice_for(frozenset({"avx512f", "avx512_bf16", "amx_bf16", "amx_int8"}), "Xeon")
    assert (amx.mode, amx.origin) == ("bf16", "cpu") and "has AMX" in amx.reason
    for flags in ({"avx512f", "avx512_bf16", "avx512_vnni"}, {"avx2", "fma"}, set()):
        other = modes.choice_for(frozenset(flags), "EPYC")
        assert other.mode == "int8-static" and "no AMX" in other.reason
    assert modes.cpu_choice().mode in ("bf16", "int8-static")


def test_a_worker_with_another_default_uses_the_recorded_mode(
    conn: psycopg.Connection[Any], db_url: str, tmp_path: Any, encoders: dict[str, Any]
) -> None:
    generate.load(conn, 60, seed=5)
    conn.commit()
    # the first embed is told int8: recorded, whatever this CPU would have chosen
    told = Settings(home=tmp_path / "home", database_url=db_url, mode="int8")
    assert sync(told, SyncOptions(mode="int8"), encoder=encoders["int8"]).mode == "int8"
    row = modes.recorded(conn)
    assert row is not None and row.mode == "int8"
    capture.install(conn, load_source(conn, told), told)
    conn.commit()

    # a worker on its own default (auto: this CPU's choice, not int8) takes the catalog's
    auto = Settings(home=tmp_path / "home", database_url=db_url)
    assert auto.mode == "auto" and modes.cpu_choice().mode != "int8"
    _rename(conn, 3, "Recorded mode brake disc")
    worker = Worker(auto, WatchOptions.from_settings(auto, nice=0, once=True, reconcile_s=0))
    assert worker.encoder.mode == "int8" and worker.mode.origin == "recorded"
    assert worker.run().written == 1
    assert _stored_modes(db_url) == {"int8": _live(conn)}

    # status and the searcher say which mode is in force, and why
    rep = report(conn, load_source(conn, auto), auto)
    assert (rep.mode, rep.configured_mode) == ("int8", "auto")
    assert "recorded for this catalog" in rep.mode_reason and rep.freshness.stale == 0
    out = run_cli("status", "--json", env={"DATABASE_URL": db_url, "PRODSEARCH_MODE": "auto"})
    assert out.returncode == 0, out.stderr
    assert '"mode": "int8"' in out.stdout and "mode_reason" in out.stdout


def test_a_worker_told_another_mode_refuses_in_one_line(
    conn: psycopg.Connection[Any], db_url: str, tmp_path: Any, encoders: dict[str, Any]
) -> None:
    settings = Settings(home=tmp_path / "home", database_url=db_url)
    _int8_catalog(conn, settings, encoders["int8"], 40, seed=6)
    _rename(conn, 2, "A change no other mode may write")

    told = Settings(home=tmp_path / "home", database_url=db_url, mode="bf16")
    with pytest.raises(modes.ModeMismatch, match=r"embedded in mode int8.*set to bf16"):
        Worker(told, WatchOptions.from_settings(told, nice=0, once=True, reconcile_s=0))
    done = run_cli("watch", "--once", env={"DATABASE_URL": db_url, "PRODSEARCH_MODE": "bf16"})
    assert done.returncode == 1
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "int8" in lines[0] and "bf16" in lines[0], done.stderr
    assert _stored_modes(db_url) == {"int8": _live(conn)}  # nothing written in bf16
    row = modes.recorded(conn)
    assert row is not None and row.mode == "int8"


def test_an_explicit_embed_switches_the_catalog_and_a_running_worker_follows(
    conn: psycopg.Connection[Any], db_url: str, tmp_path: Any, encoders: dict[str, Any]
) -> None:
    settings = Settings(home=tmp_path / "home", database_url=db_url)
    _int8_catalog(conn, settings, encoders["int8"], 40, seed=7)
    auto = Worker(settings, WatchOptions.from_settings(settings, nice=0, once=True, reconcile_s=0))
    assert auto.encoder.mode == "int8"

    live = _live(conn)
    switched = sync(settings, SyncOptions(mode="exact"), encoder=encoders["exact"])
    assert switched.written == live and switched.mode == "exact"
    assert _stored_modes(db_url) == {"exact": live}
    row = modes.recorded(conn)
    assert row is not None and row.mode == "exact"

    # the worker built before the switch loads the catalog's new mode for its next batch
    _rename(conn, 4, "Written after the switch")
    assert auto.run().written == 1
    assert auto.encoder.mode == "exact"
    assert _stored_modes(db_url) == {"exact": live}
