"""A hostile input corpus (tests/data/hostile.csv, plus files too big to check
in, made here) through the importer, the embedding pipeline and the API: every row is
stored or rejected with a reason, the counts add up, memory stays bounded."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import psycopg

from prodsearch.catalog.importer import import_file
from prodsearch.config import Settings
from prodsearch.db.names import DEMO_CATALOG
from prodsearch.embedding.sync import SyncOptions, sync
from tests.helpers import default_source
from tests.test_api import make_client

CORPUS = Path(__file__).parent / "data" / "hostile.csv"
REJECTED = {  # product_id column value -> why
    "1001": "empty name after cleaning",
    "1002": "empty name after cleaning",
    "1006": "NUL character in name",
    "1007": "invalid UTF-8 in name",
    "1010": "price must be a number",
    "1011": "price is not a number",
}
STORED = {1003, 1004, 1005, 1008, 1009, 1012, 1013}


def test_corpus_is_stored_or_rejected_with_reasons_then_searchable(
    conn: psycopg.Connection[Any], db_url: str, tmp_path: Path, encoders: dict[str, Any]
) -> None:
    feed = tmp_path / "hostile.csv"
    feed.write_bytes(CORPUS.read_bytes())
    summary = import_file(conn, feed, default_source(conn))
    assert summary.balanced and summary.read == 14
    assert (summary.inserted, summary.rejected) == (len(STORED), len(REJECTED) + 1)
    rejects = [json.loads(line) for line in feed.with_name(feed.name + ".rejects.jsonl").open()]
    by_id = {r["row"].get("product_id"): r["reason"] for r in rejects}
    for pid, reason in REJECTED.items():
        assert by_id[pid].startswith(reason), (pid, by_id[pid])
    assert any(r["reason"].startswith("duplicate product_id 1012") for r in rejects)
    names = dict(conn.execute(f"SELECT product_id, name FROM {DEMO_CATALOG}"))
    assert set(names) == STORED
    assert names[1009] == f"'; DROP TABLE {DEMO_CATALOG}; --"  # data, not SQL
    # the pipeline: every stored product embedded, or counted as failed with a warning
    result = sync(
        Settings(home=tmp_path, database_url=db_url),
        SyncOptions(mode="int8"),
        encoder=encoders["int8"],
    )
    assert result.status == "succeeded"
    assert result.written + result.failed == len(STORED) == result.eligible
    # the API: each stored name is a query that answers, with no markup passed through
    with make_client(db_url, tmp_path) as client:
        for name in names.values():
            for path in ("/search/semantic", "/search/hybrid"):
                res = client.post(path, json={"query": name, "limit": 5})
                assert res.status_code in (200, 422), (name, res.text)
                if res.status_code == 422:  # only a query with nothing visible left
                    assert "empty" in res.json()["error"]
        res = client.post("/search/hybrid", json={"query": "wiper blade", "limit": 3})
        assert res.json()["results"][0]["product_id"] == 1008


def _peak_rss_of_import(path: Path, db_url: str) -> tuple[dict[str, Any], int]:
    """Import in a child process; its summary and its peak resident memory in bytes
    (VmHWM: unlike ru_maxrss it does not carry the parent's peak across exec)."""
    code = (
        "import json, sys, psycopg\n"
        "from prodsearch.catalog.importer import import_file\n"
        "from prodsearch.catalog.source import load_source\n"
        "from prodsearch.config import Settings\n"
        "with psycopg.connect(sys.argv[2]) as c:\n"
        "    src = load_source(c, Settings())\n"
        "    s = import_file(c, __import__('pathlib').Path(sys.argv[1]), src)\n"
        "hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM')][0]\n"
        "print(json.dumps({'summary': s.as_dict(), 'rss': int(hwm.split()[1]) * 1024}))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(path), db_url], capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr[-2000:]
    data = json.loads(out.stdout)
    return data["summary"], data["rss"]


def test_huge_lines_and_wide_files_in_bounded_memory(db_url: str, tmp_path: Path) -> None:
    long_line = tmp_path / "long-line.csv"
    with long_line.open("w", encoding="utf-8") as fh:
        fh.write("product_id,name,description\n")
        fh.write("1,Huge," + "x" * 100_000_000 + "\n")  # a 100 MB single line
        fh.write(f"2,Big description,{'Opis produktu. ' * 70_000}\n")  # ~1 MB: stored
        fh.write("3,After the long lines,ok\n")
    summary, rss = _peak_rss_of_import(long_line, db_url)
    assert (summary["inserted"], summary["rejected"]) == (2, 1)
    assert list(summary["reasons"]) == ["line longer than 16777216 bytes"]
    assert rss < 160_000_000, f"peak RSS {rss:,} bytes for a 100 MB line"
    wide = tmp_path / "wide.csv"
    header = ["product_id", "name"] + [f"c{i}" for i in range(9_998)]
    wide.write_text(
        ",".join(header) + "\n" + "5,Wide row," + ",".join(["v"] * 9_998) + "\n" + "6,Short\n",
        encoding="utf-8",
    )
    summary, _ = _peak_rss_of_import(wide, db_url)
    assert (summary["inserted"], summary["rejected"]) == (1, 1)
    assert summary["reasons"] == {"expected 10000 fields, found 2": 1}
    assert len(summary["ignored_columns"]) == 9_998
