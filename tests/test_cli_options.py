"""A bad value for any restricted option or setting is one line naming the option and the
values it takes, exit status 2, before any work starts (the database is not started)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.conftest import run_cli

NO_URL = {"DATABASE_URL": "", "PRODSEARCH_DATABASE_URL": ""}

# (arguments, the option named in the error, values the error must list)
BAD_OPTIONS: list[tuple[tuple[str, ...], str, tuple[str, ...]]] = [
    (("embed", "--mode", "foo"), "--mode", ("auto", "exact", "bf16", "int8", "int8-static")),
    (("embed", "--engine", "spark"), "--engine", ("local", "ray")),
    (("embed", "--batch-size", "0"), "--batch-size", ("1",)),
    (("search", "brake pads", "--mode", "fuzzy"), "--mode", ("semantic", "filtered", "hybrid")),
    (("catalog", "import", "{file}", "--format", "xml"), "--format", ("csv", "jsonl", "parquet")),
    (("bench", "encode", "--modes", "exact,fp64"), "--modes", ("auto", "int8-static")),
    (("bench", "embed", "--modes", "fp64"), "--modes", ("exact", "bf16", "int8-static")),
    (("bench", "embed", "--engines", "local,spark"), "--engine", ("local", "ray")),
    (("bench", "search", "--endpoints", "semantic,x"), "--endpoints", ("similar", "hybrid")),
    (("bench", "search", "--concurrency", "1,a"), "--concurrency", ("integers",)),
    (("bench", "index", "--shapes", "ivfflat"), "--shapes", ("vector", "halfvec")),
    (("bench", "index", "--params", "16y64"), "--params", ("16x64",)),
    (("bench", "index", "--ef", "0"), "--ef", ("1", "1000")),
    (("bench", "relevance", "--modes", "semantic,vibes"), "--modes", ("hybrid", "lexical")),
]
BAD_SETTINGS: list[tuple[dict[str, str], str, tuple[str, ...]]] = [
    ({"PRODSEARCH_MODE": "foo"}, "PRODSEARCH_MODE", ("auto", "bf16", "int8-static")),
    ({"PRODSEARCH_INDEX_TYPE": "ivf"}, "PRODSEARCH_INDEX_TYPE", ("vector", "halfvec")),
    ({"PRODSEARCH_EF_SEARCH": "0"}, "PRODSEARCH_EF_SEARCH", ("1",)),
]


def _check(stderr: str, returncode: int, option: str, allowed: tuple[str, ...]) -> None:
    assert returncode == 2, stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    line = lines[0]
    assert line.startswith("error: ") and option in line, line
    assert all(value in line for value in allowed), line
    assert "Traceback" not in stderr


def test_every_restricted_option_is_one_line_and_exit_2(tmp_path: Path) -> None:
    feed = tmp_path / "items.csv"
    feed.write_text("product_id,name\n1,Brake pads\n")
    home = tmp_path / "home"
    env = {"PRODSEARCH_HOME": str(home), **NO_URL}

    def run(case: tuple[tuple[str, ...], str, tuple[str, ...]]) -> None:
        args, option, allowed = case
        res = run_cli(*(a.format(file=feed) for a in args), env=env, timeout=120)
        _check(res.stderr, res.returncode, option, allowed)

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(run, BAD_OPTIONS))
    assert not (home / "pg").exists()  # nothing started a database


@pytest.mark.parametrize(("extra", "variable", "allowed"), BAD_SETTINGS)
def test_a_bad_setting_is_one_line_and_exit_2(
    tmp_path: Path, extra: dict[str, str], variable: str, allowed: tuple[str, ...]
) -> None:
    home = tmp_path / "home"
    res = run_cli("embed", env={"PRODSEARCH_HOME": str(home), **NO_URL, **extra}, timeout=120)
    _check(res.stderr, res.returncode, variable, allowed)
    assert not (home / "pg").exists()
