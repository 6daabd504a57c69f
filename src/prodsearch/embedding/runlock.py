"""One embed run per database: the advisory lock, and the run's own connection kept
alive across a database restart."""

from __future__ import annotations

import logging
from typing import Any

import psycopg

from prodsearch.db import connect
from prodsearch.db.retry import is_connection_loss, retry_db
from prodsearch.embedding import runs_sql
from prodsearch.errors import ProdsearchError

log = logging.getLogger("prodsearch.sync")


def alive(
    conn: psycopg.Connection[Any], url: str, budget_s: float, lock_wait_s: float
) -> psycopg.Connection[Any]:
    """The run's own connection after the embed stage. A database restart meanwhile closed
    it (the writer rode it out) and released the run lock: reconnect, take the lock again."""
    try:
        runs_sql.ping(conn)
        conn.commit()
        return conn
    except psycopg.OperationalError as exc:
        if not is_connection_loss(exc):
            raise
    conn.close()
    fresh = retry_db(lambda: connect(url), budget_s, "reconnecting after the embed stage")
    take_lock(fresh, lock_wait_s)
    return fresh


def take_lock(conn: psycopg.Connection[Any], wait_s: float) -> None:
    """One embed run per database. A second run waits for the first (up to ``wait_s``),
    then finds only what is left to do; so does a rerun right after a killed run, whose
    server session may hold the lock a moment longer."""
    got = runs_sql.try_run_lock(conn)
    conn.commit()  # the lock is the session's: no transaction left open
    if got:
        return
    busy = (
        f"another embed run is still in progress on this database after {wait_s:g} s: "
        "let it finish (PRODSEARCH_LOCK_WAIT_S sets how long to wait)"
    )
    if wait_s <= 0:
        raise ProdsearchError(busy)
    log.warning("another embed run is in progress on this database: waiting up to %g s", wait_s)
    try:
        runs_sql.wait_run_lock(conn, wait_s)
        conn.commit()
    except psycopg.errors.LockNotAvailable:
        conn.rollback()
        raise ProdsearchError(busy) from None
