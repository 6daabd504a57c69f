"""Connections: resolve the database URL (embedded or external) and check pgvector."""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg import sql

from prodsearch.config import Settings, mask_url
from prodsearch.db import server
from prodsearch.db.retry import one_line
from prodsearch.errors import DatabaseUnavailable

MIN_PGVECTOR = (0, 8)
CONNECT_TIMEOUT_S = 5


def database_url(settings: Settings) -> str:
    """The URL to use: ``DATABASE_URL`` when set, else the running embedded server's. Starts
    nothing: an entry point calls :func:`start_database` first."""
    if settings.database_url is not None:
        return settings.database_url.get_secret_value()
    st = server.status(settings.pg_dir)
    if not st.running or st.url is None:
        raise DatabaseUnavailable(
            f"the embedded database in {settings.pg_dir} is not running: run `prodsearch db start`"
        )
    return st.url


def start_database(settings: Settings) -> str:
    """The explicit start: the embedded server in ``settings.pg_dir`` is started (initialised
    on first use) unless ``DATABASE_URL`` names another server; returns the URL to use."""
    if settings.database_url is not None:
        return settings.database_url.get_secret_value()
    return server.start(settings.pg_dir)


def connect(url: str, **kwargs: Any) -> psycopg.Connection[Any]:
    """Connect with a short timeout; failures become one readable line."""
    kwargs.setdefault("connect_timeout", CONNECT_TIMEOUT_S)
    try:
        return psycopg.connect(url, **kwargs)
    except psycopg.OperationalError as exc:
        reason = one_line(exc)
        raise DatabaseUnavailable(
            f"cannot connect to {mask_url(url)}: {reason} — check DATABASE_URL, "
            "or unset it to use the embedded server"
        ) from exc
    except psycopg.ProgrammingError as exc:
        raise DatabaseUnavailable(f"invalid database URL {mask_url(url)}: {exc}") from exc


def _version_tuple(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in version.split(".") if p.isdigit())


def ensure_pgvector(conn: psycopg.Connection[Any]) -> str:
    """Make sure pgvector >= 0.8 is installed (installing it when available); return its version."""
    row = conn.execute(
        "SELECT default_version, installed_version FROM pg_available_extensions "
        "WHERE name = 'vector'"
    ).fetchone()
    if row is None:
        raise DatabaseUnavailable(
            "pgvector is not available on this server: install pgvector >= 0.8, "
            "or unset DATABASE_URL to use the embedded server"
        )
    default_version, installed = row
    if installed is None:
        if _version_tuple(default_version) < MIN_PGVECTOR:
            raise DatabaseUnavailable(
                f"pgvector {default_version} is available but >= 0.8 is needed"
            )
        try:
            conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
            conn.commit()
        except psycopg.Error as exc:
            conn.rollback()
            raise DatabaseUnavailable(
                f"pgvector {default_version} is available but could not be installed "
                f"({exc.diag.message_primary or exc}): "
                "ask a superuser to run CREATE EXTENSION vector"
            ) from exc
        installed = default_version
    if _version_tuple(installed) < MIN_PGVECTOR:
        raise DatabaseUnavailable(
            f"pgvector {installed} is installed but >= 0.8 is needed: ALTER EXTENSION vector UPDATE"
        )
    return str(installed)


def vacuum_analyze(conn: psycopg.Connection[Any], *table: str) -> None:
    """``VACUUM (ANALYZE)`` one table (given as schema, name) after a bulk load: fresh
    planner statistics, and a visibility map so filters can use index-only scans."""
    conn.commit()
    previous = conn.autocommit
    conn.autocommit = True
    try:
        conn.execute(sql.SQL("VACUUM (ANALYZE) {}").format(sql.Identifier(*table)))
    finally:
        conn.autocommit = previous
