"""The API reads from a separate read URL (a replica); Ray stays optional."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from prodsearch.db.names import DEMO_CATALOG
from tests.test_api import make_client


def test_search_reads_from_the_read_url(search_db: str, pg_root: Path) -> None:
    """With PRODSEARCH_READ_DATABASE_URL the searches go there (here a copy of the
    database whose product names differ), while DATABASE_URL keeps the migrations."""
    admin = make_conninfo(search_db, dbname="postgres")
    replica_name = conninfo_to_dict(search_db)["dbname"] + "_replica"
    replica = make_conninfo(search_db, dbname=replica_name)
    with psycopg.connect(admin, autocommit=True) as c:
        c.execute(
            f"CREATE DATABASE {replica_name} TEMPLATE {conninfo_to_dict(search_db)['dbname']}"
        )
    try:
        with psycopg.connect(replica) as c:
            c.execute(f"UPDATE {DEMO_CATALOG} SET name = 'REPLICA ' || name")
        body = {"query": "front brake pads", "limit": 5}
        with make_client(search_db, pg_root) as primary_only:
            names = [
                r["name"]
                for r in primary_only.post("/search/semantic", json=body).json()["results"]
            ]
        assert names and not any(n.startswith("REPLICA ") for n in names)
        with make_client(search_db, pg_root, read_database_url=replica) as client:
            res = client.post("/search/semantic", json=body).json()["results"]
            assert res and all(r["name"].startswith("REPLICA ") for r in res)
            assert client.get("/health").json()["database"] == "ok"
    finally:
        with psycopg.connect(admin, autocommit=True) as c:
            c.execute(f"DROP DATABASE IF EXISTS {replica_name} WITH (FORCE)")


def test_ray_is_optional(db_url: str, tmp_path: Path) -> None:
    """Without Ray installed, --engine ray says how to install it; the local engine never
    imports Ray."""
    missing = (
        "import sys; sys.modules['ray'] = None; sys.argv = ['prodsearch', 'embed', "
        "'--engine', 'ray', '--quiet']; from prodsearch.cli import main; main()"
    )
    env = {**os.environ, "DATABASE_URL": db_url, "PRODSEARCH_HOME": str(tmp_path)}
    res = subprocess.run([sys.executable, "-c", missing], capture_output=True, text=True, env=env)
    assert res.returncode == 1, res.stderr
    assert "pip install 'prodsearch[ray]'" in res.stderr
    local = (
        "import sys; sys.argv = ['prodsearch', 'embed', '--quiet']; "
        "from prodsearch.cli import main\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "print('ray' in sys.modules)"
    )
    res = subprocess.run([sys.executable, "-c", local], capture_output=True, text=True, env=env)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip().splitlines()[-1] == "False"
