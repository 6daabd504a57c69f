"""Lower the CPU priority of a connection's server process, where that is possible.

A background writer (the watch worker) spends much of its CPU inside its PostgreSQL
backend: each embedding it writes is an HNSW insert, a graph search of its own. On a
machine where the API, the database and the worker share the cores, the worker's own
niceness does not reach that backend, so its inserts compete with the searches as
equals. When the server runs on this machine, the process answering the connection is
reniced by the same amount. Nothing happens (and ``False`` is returned) when the server
is elsewhere, the process is not a PostgreSQL process of this machine (a server in a
container reports its own namespace's pids), or the operating system refuses.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import psycopg

log = logging.getLogger("prodsearch.db")

LOCAL_HOSTS = {"localhost", "127.0.0.1", "::1"}


def renice_backend(conn: psycopg.Connection[Any], nice: int) -> bool:
    """Add ``nice`` to the niceness of ``conn``'s server process; whether it was done."""
    if nice <= 0 or not hasattr(os, "setpriority"):
        return False
    host = conn.info.host or ""
    if not (host.startswith("/") or host in LOCAL_HOSTS):
        return False  # the server is on another machine
    pid = conn.info.backend_pid
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    if b"postgres" not in cmdline:
        return False  # not this machine's process (a container's pid namespace)
    try:
        current = os.getpriority(os.PRIO_PROCESS, pid)
        os.setpriority(os.PRIO_PROCESS, pid, min(19, current + nice))
    except OSError as exc:
        log.info(
            "could not renice the database session %d (%s): it runs at full priority", pid, exc
        )
        return False
    return True
