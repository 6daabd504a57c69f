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
    return rel.parts[0] == "db" or rel.name in ("store.py", "queries.py", "sql.py")


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
    assert not offenders, "SQL outside db/, store.py, queries.py, sql.py:\n" + "\n".join(offenders)
