"""The codebase's shape rules, checked: SQL text lives only in the modules whose job is
SQL for one concept (docs/ARCHITECTURE.md, "Where SQL lives")."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import prodsearch

PACKAGE = Path(prodsearch.__file__).parent

# statements and catalog reads, in the shapes this codebase writes them
SQL = re.compile(
    r"\b(SELECT\s|INSERT\s+INTO|UPDATE\s+\S+\s+(AS\s+\w+\s+)?SET|DELETE\s+FROM|DELETE\s*$"
    r"|CREATE\s+(TEMP|TABLE|INDEX|DATABASE|EXTENSION|UNIQUE)|DROP\s+(TABLE|INDEX|DATABASE)"
    r"|ALTER\s+(TABLE|SYSTEM|EXTENSION)|TRUNCATE|COPY\s|VACUUM|ANALYZE\s|EXPLAIN\s|RESET\s"
    r"|SET\s+[a-z_.]+\s*=|set_config\(|pg_advisory|pg_try_advisory|information_schema"
    r"|ON\s+CONFLICT|FROM\s+\{|JOIN\s+\{)"
)


def sql_module(path: Path) -> bool:
    rel = path.relative_to(PACKAGE)
    return (
        rel.parts[0] == "db"
        or rel.name in ("store.py", "queries.py", "sql.py")
        or rel.name.endswith("_sql.py")
    )


def docstrings(tree: ast.AST) -> set[int]:
    """ids of the string nodes that are docstrings (prose, not SQL)."""
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                out.add(id(body[0].value))
    return out


def sql_literals(path: Path) -> list[str]:
    tree = ast.parse(path.read_text())
    skip = docstrings(tree)
    found = []
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and id(node) not in skip
            and SQL.search(node.value)
        ):
            found.append(f"{path.relative_to(PACKAGE)}:{node.lineno}: {node.value[:60]!r}")
    return found


def test_the_detector_finds_sql() -> None:
    for text in (
        "SELECT count(*) FROM {}",
        "UPDATE {t} SET {n} = {e}",
        "SET hnsw.ef_search = 40",
        "SELECT set_config('hnsw.ef_search', %s, true)",
        "RESET enable_indexscan",
        "DROP TABLE IF EXISTS {}",
    ):
        assert SQL.search(text), text
    for prose in ("Select a mode", "update the catalog", "reset the map", "set of values"):
        assert not SQL.search(prose), prose


def test_sql_lives_only_in_sql_modules() -> None:
    offenders = [
        hit
        for path in sorted(PACKAGE.rglob("*.py"))
        if not sql_module(path)
        for hit in sql_literals(path)
    ]
    assert not offenders, "SQL outside db/ and the *sql.py, store.py, queries.py modules:\n" + (
        "\n".join(offenders)
    )


# Who may end a transaction: the units of work (docs/ARCHITECTURE.md, "Transactions").
# Everything else, the SQL modules above all, runs in its caller's transaction.
TRANSACTION_OWNERS = {
    "db/connect.py",  # connection set-up: installing pgvector, VACUUM outside a transaction
    "db/migrate.py",  # one migration, one transaction
    "catalog/generate.py",  # the demo catalog, one load
    "catalog/importer.py",  # an import, one transaction per chunk
    "embedding/sync.py",  # an embed run: its steps and its runs-table row
    "embedding/runlock.py",  # the run's session lock
    "embedding/pipeline.py",  # one chunk written, one transaction
    "watch/worker.py",  # one batch of queued changes, one transaction
    "watch/capture.py",  # installing capture, requeueing failed items
    "search/execution.py",  # a search that needs a local hnsw.ef_search
    "suggest/service.py",  # a suggestion that needs a local planner setting
    "ops/verify.py",  # one recall probe at the configured ef_search
}
TRANSACTION_CALLS = {"commit", "rollback", "transaction"}


def transaction_calls(path: Path) -> list[str]:
    tree = ast.parse(path.read_text())
    return [
        f"{path.relative_to(PACKAGE)}:{node.lineno}: .{node.func.attr}()"
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr in TRANSACTION_CALLS
    ]


def test_sql_modules_never_end_a_transaction() -> None:
    offenders = [
        hit
        for path in sorted(PACKAGE.rglob("*.py"))
        if sql_module(path) and str(path.relative_to(PACKAGE)) not in TRANSACTION_OWNERS
        for hit in transaction_calls(path)
    ]
    assert not offenders, "SQL modules run in their caller's transaction:\n" + "\n".join(offenders)


def test_only_the_units_of_work_own_transactions() -> None:
    """The benchmarks (bench/) are harnesses and own theirs; the CLI commits by leaving a
    ``with`` block; every other module that commits, rolls back or opens a transaction is
    named in TRANSACTION_OWNERS."""
    owners = {
        str(path.relative_to(PACKAGE)) for path in PACKAGE.rglob("*.py") if transaction_calls(path)
    }
    harness = {o for o in owners if o.startswith("bench/") and not sql_module(PACKAGE / o)}
    assert owners - harness <= TRANSACTION_OWNERS, sorted(owners - harness - TRANSACTION_OWNERS)
    stale = TRANSACTION_OWNERS - owners
    assert not stale, f"named as owners but own no transaction: {sorted(stale)}"


PERCENTILE_CALLS = {"percentile", "quantile", "quantiles", "nanpercentile"}


def test_one_percentile_definition() -> None:
    """Every benchmark's p50/p95/p99 comes from bench.load.percentile."""
    home = PACKAGE / "bench" / "load.py"
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            name = None
            if isinstance(node, ast.FunctionDef) and (
                "percentile" in node.name or "pct" in node.name.split("_")
            ):
                name = f"def {node.name}"
            elif (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in PERCENTILE_CALLS
            ):
                name = f".{node.func.attr}()"
            if name and path != home:
                found.append(f"{path.relative_to(PACKAGE)}:{node.lineno}: {name}")
    assert not found, "percentiles outside bench/load.py:\n" + "\n".join(found)


def test_tests_are_named_by_concept() -> None:
    """A test says what it checks; which issue asked for it is the history's business."""
    tests = Path(__file__).parent
    found = [
        f"{path.name}:{n}"
        for path in sorted(tests.glob("*.py"))
        if path.name != Path(__file__).name
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if re.search(r"\bissue\s*#?\d+", line, re.IGNORECASE)
    ]
    assert not found, "issue numbers in tests:\n" + "\n".join(found)


# the packages whose modules pass rows and options to each other (the core contracts)
TYPED_PACKAGES = ("search", "embedding", "watch")
UNTYPED_MAPS = re.compile(r"\b(dict|Dict|Mapping|MutableMapping)\[str, (typing\.)?Any\]")


def untyped_maps(path: Path, root: Path = PACKAGE) -> list[str]:
    """Annotations of ``path`` (parameters, returns, fields, variables) that are string-keyed
    maps of ``Any``: rows and options read by key, where a typo is a silent ``None``."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        annotations: list[ast.expr] = []
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            args = node.args
            every = [*args.posonlyargs, *args.args, *args.kwonlyargs, args.vararg, args.kwarg]
            annotations += [a.annotation for a in every if a is not None and a.annotation]
            annotations += [node.returns] if node.returns is not None else []
        elif isinstance(node, ast.AnnAssign):
            annotations.append(node.annotation)
        elif isinstance(node, ast.Assign) and isinstance(node.value, ast.Subscript):
            annotations.append(node.value)  # an alias: Row = dict[str, Any]
        for annotation in annotations:
            text = ast.unparse(annotation)
            if UNTYPED_MAPS.search(text):
                found.append(f"{path.relative_to(root)}:{annotation.lineno}: {text}")
    return found


def test_the_untyped_map_detector_finds_them(tmp_path: Path) -> None:
    planted = tmp_path / "planted.py"
    planted.write_text(
        "from typing import Any\n"
        "Row = dict[str, Any]\n"
        "def f(rows: list[dict[str, Any]]) -> None: ...\n"
        "class C:\n    extra: Mapping[str, Any]\n"
        "def g(x: dict[str, int]) -> dict[str, object]: ...\n"
    )
    found = untyped_maps(planted, tmp_path)
    assert [hit.split(":")[1] for hit in found] == ["2", "3", "5"], found


def test_no_untyped_maps_cross_the_core_modules() -> None:
    """Search rows, runs, model configs and options are typed (dataclasses, Literals,
    :mod:`prodsearch.jsonvalue` for JSON) in search/, embedding/ and watch/."""
    offenders = [
        hit
        for package in TYPED_PACKAGES
        for path in sorted((PACKAGE / package).rglob("*.py"))
        for hit in untyped_maps(path)
    ]
    assert not offenders, "string-keyed maps of Any:\n" + "\n".join(offenders)
