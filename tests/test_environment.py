"""Faults of the environment give one clear line and a way out, never a
traceback; a stale postmaster.pid after a host crash recovers by itself."""

from __future__ import annotations

import shutil
import socket
from pathlib import Path

from prodsearch.embedding.export import _fresh, onnx_model
from prodsearch.embedding.model import resolve_model
from tests.conftest import run_cli

NO_URL = {"DATABASE_URL": "", "PRODSEARCH_DATABASE_URL": ""}


def _one_error_line(res: object) -> str:
    stderr = res.stderr  # type: ignore[attr-defined]
    assert res.returncode == 1, stderr  # type: ignore[attr-defined]
    assert "Traceback" not in stderr, stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr
    return lines[0]


def test_home_that_is_not_a_writable_folder(tmp_path: Path, db_url: str) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    home = str(blocker / "home")
    line = _one_error_line(run_cli("db", "start", env={"PRODSEARCH_HOME": home, **NO_URL}))
    assert "PRODSEARCH_HOME" in line and "Not a directory" in line
    # with an external database the embed still needs HOME for its log
    line = _one_error_line(
        run_cli("embed", "--mode", "int8", env={"PRODSEARCH_HOME": home, "DATABASE_URL": db_url})
    )
    assert "PRODSEARCH_HOME" in line


def test_port_already_in_use(search_db: str, pg_root: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        env = {"DATABASE_URL": search_db, "PRODSEARCH_HOME": str(pg_root)}
        line = _one_error_line(run_cli("serve", "--port", str(port), env=env, timeout=120))
    assert f"127.0.0.1:{port}" in line and "--port" in line


def test_stale_postmaster_pid_recovers_by_itself(tmp_path: Path) -> None:
    """After a host crash postmaster.pid names a pid that another process may now have
    (here pid 1): status says stopped, and start removes the file and starts."""
    env = {"PRODSEARCH_HOME": str(tmp_path / "home"), **NO_URL}
    try:
        assert run_cli("db", "start", env=env).returncode == 0
        pid_file = tmp_path / "home" / "pg" / "postmaster.pid"
        saved = pid_file.read_text()
        assert run_cli("db", "stop", env=env).returncode == 0
        pid_file.write_text("1\n" + saved.split("\n", 1)[1])
        assert run_cli("db", "status", env=env).stdout.startswith("stopped")
        started = run_cli("db", "start", env=env)
        assert started.returncode == 0, started.stderr
        assert "stale" in started.stderr
        res = run_cli("db", "psql", "-tAc", "select 41 + 1", env=env)
        assert res.stdout.strip() == "42", res.stderr
    finally:
        run_cli("db", "stop", env=env)


def test_damaged_model_export_is_rebuilt_not_loaded(models_dir: Path, tmp_path: Path) -> None:
    """The manifest records the export's size and SHA-256: a truncated file or one
    damaged in place is stale (rebuilt on next use), never loaded."""
    source = resolve_model(None)
    onnx_model(source, "int8", models_dir)  # the session's cached export
    folder = tmp_path / "cache"
    shutil.copytree(models_dir, folder)
    target = next(folder.glob("*/int8.onnx"))
    manifest = target.with_name("int8.manifest.json")
    assert _fresh(manifest, target, source, "int8")
    data = bytearray(target.read_bytes())
    data[len(data) // 2 : len(data) // 2 + 64] = bytes(64)  # same size, damaged inside
    target.write_bytes(bytes(data))
    assert not _fresh(manifest, target, source, "int8")
    target.write_bytes(bytes(data[: len(data) // 3]))  # truncated
    assert not _fresh(manifest, target, source, "int8")
    target.unlink()  # missing
    assert not _fresh(manifest, target, source, "int8")
