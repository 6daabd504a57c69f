"""Versioned, idempotent schema migrations (``migrations/NNNN_name.sql``).

Each file runs once, in its own transaction, and is recorded in
``prodsearch.schema_migrations`` with a checksum. Concurrent ``init`` calls serialise on
an advisory lock. A recorded migration whose file changed is an error, never re-run.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from importlib import resources
from typing import Any

import psycopg

from prodsearch.db.connect import ensure_pgvector
from prodsearch.errors import ProdsearchError

_LOCK_KEY = 0x70726F64  # 'prod'


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def available() -> list[Migration]:
    folder = resources.files("prodsearch.db") / "migrations"
    found = []
    for entry in folder.iterdir():
        if entry.name.endswith(".sql"):
            version, _, name = entry.name.removesuffix(".sql").partition("_")
            found.append(Migration(int(version), name, entry.read_text(encoding="utf-8")))
    return sorted(found, key=lambda m: m.version)


def migrate(conn: psycopg.Connection[Any]) -> list[Migration]:
    """Apply pending migrations; return those applied (empty when up to date)."""
    ensure_pgvector(conn)
    conn.execute("SELECT pg_advisory_lock(%s)", (_LOCK_KEY,))
    try:
        conn.execute("CREATE SCHEMA IF NOT EXISTS prodsearch")
        conn.execute(
            "CREATE TABLE IF NOT EXISTS prodsearch.schema_migrations ("
            " version INTEGER PRIMARY KEY, name TEXT NOT NULL, checksum TEXT NOT NULL,"
            " applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
        )
        conn.commit()
        done = dict(conn.execute("SELECT version, checksum FROM prodsearch.schema_migrations"))
        applied = []
        for mig in available():
            if mig.version in done:
                if done[mig.version] != mig.checksum:
                    raise ProdsearchError(
                        f"migration {mig.version:04d}_{mig.name} was changed after it was applied; "
                        "add a new migration instead of editing an applied one"
                    )
                continue
            with conn.transaction():
                conn.execute(mig.sql.encode())
                conn.execute(
                    "INSERT INTO prodsearch.schema_migrations (version, name, checksum) "
                    "VALUES (%s, %s, %s)",
                    (mig.version, mig.name, mig.checksum),
                )
            applied.append(mig)
        conn.commit()
        return applied
    finally:
        conn.rollback()
        conn.execute("SELECT pg_advisory_unlock(%s)", (_LOCK_KEY,))
        conn.commit()


def current_version(conn: psycopg.Connection[Any]) -> int | None:
    row = conn.execute("SELECT to_regclass('prodsearch.schema_migrations') IS NOT NULL").fetchone()
    if not row or not row[0]:
        return None
    ver = conn.execute("SELECT max(version) FROM prodsearch.schema_migrations").fetchone()
    return ver[0] if ver else None
