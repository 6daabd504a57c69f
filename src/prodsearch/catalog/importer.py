"""Import catalog files into the configured source table: validate, upsert, lose nothing.

The target is the configured source (``PRODSEARCH_SOURCE_TABLE``, ``…_ID_COLUMN``,
``…_TEXT_FIELDS``; default ``staging_marts.dim_product``): its columns, read from the
database, decide what a file may hold and how each value is checked.

Rules (documented in the README):

- Columns: the file's columns (after ``--map target=source``) that name columns of the
  table are written; other columns are ignored and listed in the summary. The id column
  and the name column (the first text field) are required. In JSON Lines a key missing
  from one line is NULL for that line. ``updated_at``, when the table has it, is set by
  the import.
- A row is rejected when: the id is missing, not an integer or not positive; the name is
  empty after text cleaning; the price is not a non-negative number (``12.50``, ``12,50``
  and ``1 234,50`` are numbers; other numeric columns may be negative); an integer column
  holds no integer; a boolean is not one of true/false/1/0/yes/no/t/f/y/n; a date or
  timestamp is not ISO 8601; a value holds invalid UTF-8 or a NUL character; a NOT NULL
  column is empty; the record is malformed (wrong CSV field count, invalid JSON); or its
  id already appeared earlier in the same file (**the first occurrence wins**; later
  ones are rejected with the line of the first).
- Rejected rows go to ``PATH.rejects.jsonl`` (line, reason, the row as read).
- Upsert by the id column in chunks, one transaction each: a row whose provided columns
  equal the stored ones is *unchanged* (not touched, ``updated_at`` kept).
- The summary always satisfies ``read == inserted + updated + unchanged + rejected``.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from psycopg import errors as pg_errors

from prodsearch.catalog import sql as catalog_sql
from prodsearch.catalog.readers import Record, detect_format, read_records
from prodsearch.catalog.source import Source
from prodsearch.catalog.text import clean_text
from prodsearch.catalog.values import KINDS, Kind, parse
from prodsearch.db import introspect
from prodsearch.db.connect import vacuum_analyze
from prodsearch.errors import ProdsearchError, RowError

# demo-catalog conveniences, applied only where the table has these columns
_CONVENIENCE_DEFAULTS = {"in_stock": False, "currency": "PLN"}


@dataclass(frozen=True)
class Target:
    """The table an import writes (the validated source): its id and name columns and
    each importable column's kind (from its data type; other types are not importable)."""

    source: Source
    kinds: dict[str, Kind]
    required: frozenset[str]  # NOT NULL columns the import must be given a value for
    updated_at: bool
    defaults: dict[str, Any]  # the value of a column a row leaves empty

    @classmethod
    def of(cls, conn: psycopg.Connection[Any], source: Source) -> Target:
        rows = introspect.column_details(conn, source.schema, source.table)
        kinds = {c: KINDS[t] for c, t, _nn, _d in rows if t in KINDS and c != "updated_at"}
        if kinds.get(source.id_column) != "int":
            raise ProdsearchError(
                f"{source.name}.{source.id_column} must be an integer column to import into"
            )
        defaults = {c: v for c, v in _CONVENIENCE_DEFAULTS.items() if c in kinds}
        flag = source.live_flag()  # a new row is live unless its file says otherwise
        if flag is not None and kinds.get(flag[0]) == "bool":
            defaults[flag[0]] = flag[1]
        required = frozenset(
            c
            for c, _t, not_null, has_default in rows
            if not_null and not has_default and c in kinds and c not in defaults
        )
        has_stamp = any(r[0] == "updated_at" for r in rows)
        return cls(source, kinds, required, has_stamp, defaults)

    @property
    def id_column(self) -> str:
        return self.source.id_column

    @property
    def name_column(self) -> str:
        return self.source.text_columns[0]


@dataclass
class ImportSummary:
    path: str
    format: str
    read: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: int = 0
    reasons: Counter[str] = field(default_factory=Counter)
    ignored_columns: list[str] = field(default_factory=list)
    rejects_path: str | None = None

    @property
    def balanced(self) -> bool:
        return self.read == self.inserted + self.updated + self.unchanged + self.rejected

    def as_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "format": self.format,
            "read": self.read,
            "inserted": self.inserted,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "rejected": self.rejected,
            "reasons": dict(self.reasons),
            "ignored_columns": self.ignored_columns,
            "rejects_path": self.rejects_path,
        }


def parse_mapping(pairs: Iterable[str]) -> dict[str, str]:
    """``["name=title", "product_id=id"]`` → ``{"name": "title", "product_id": "id"}``.
    The targets are checked against the table's columns by :func:`import_file`."""
    mapping: dict[str, str] = {}
    for pair in pairs:
        target, sep, source = pair.partition("=")
        target, source = target.strip(), source.strip()
        if not sep or not target or not source:
            raise ProdsearchError(f"--map {pair!r}: expected TARGET=SOURCE, e.g. name=title")
        mapping[target] = source
    return mapping


def _check_mapping(mapping: Mapping[str, str], target: Target) -> None:
    for column, source in mapping.items():
        if column not in target.kinds:
            raise ProdsearchError(
                f"--map {column}={source}: {column!r} is not a catalog column of "
                f"{target.source.name}; use one of {', '.join(target.kinds)}"
            )


def validate(data: Mapping[str, Any], columns: Iterable[str], target: Target) -> dict[str, Any]:
    """Normalise one mapped record; raise RowError with the reason when it cannot be stored."""
    out: dict[str, Any] = {}
    pid = parse(data.get(target.id_column), target.id_column, "int")
    if pid is None:
        raise RowError(f"missing {target.id_column}")
    if pid <= 0:
        raise RowError(f"{target.id_column} must be positive: {pid}")
    out[target.id_column] = pid
    for col in columns:
        if col != target.id_column:
            out[col] = parse(data.get(col), col, target.kinds[col])
    if not clean_text(out.get(target.name_column)):
        raise RowError(f"empty {target.name_column} after cleaning")
    if "currency" in out and not out["currency"]:
        out["currency"] = "PLN"
    derive = "in_stock" in target.kinds and ("in_stock" in out or "stock_qty" in out)
    if derive and out.get("in_stock") is None:
        out["in_stock"] = (out.get("stock_qty") or 0) > 0
    for col in target.required & out.keys():
        if out[col] is None:
            raise RowError(f"{col} is required (NOT NULL)")
    return out


class _Rejects:
    """Writes rejected rows to PATH.rejects.jsonl, created on the first reject."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fh: Any = None
        path.unlink(missing_ok=True)  # a stale file from an earlier import would mislead

    def write(self, record: Record, reason: str) -> None:
        if self._fh is None:
            self._fh = self.path.open("w", encoding="utf-8")
        row = dict(record.data)
        line = json.dumps(
            {"line": record.line, "reason": reason, "row": row}, ensure_ascii=False, default=str
        )
        self._fh.write(line.encode("utf-8", "backslashreplace").decode("utf-8") + "\n")

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()


def _or_default(row: Mapping[str, Any], column: str, target: Target) -> Any:
    value = row.get(column)
    return target.defaults.get(column) if value is None else value


def _upsert(
    conn: psycopg.Connection[Any], rows: list[dict[str, Any]], target: Target
) -> tuple[int, int]:
    """Upsert one chunk; return (inserted, updated). Unchanged rows are not touched."""
    cols = [
        target.id_column,
        *(c for c in target.kinds if c != target.id_column and any(c in r for r in rows)),
    ]
    values = ([_or_default(row, c, target) for c in cols] for row in rows)
    try:
        with conn.transaction():  # one chunk, one transaction
            return catalog_sql.upsert_rows(conn, target.source, cols, values, target.updated_at)
    except pg_errors.InvalidColumnReference:
        raise ProdsearchError(
            f"{target.source.name}.{target.id_column} needs a primary key or unique constraint "
            "for the import to upsert by it"
        ) from None


def import_file(
    conn: psycopg.Connection[Any],
    path: Path,
    source: Source,
    fmt: str | None = None,
    mapping: Mapping[str, str] | None = None,
    chunk_size: int = 5000,
    progress: Callable[[ImportSummary], None] | None = None,
) -> ImportSummary:
    """Stream ``path`` into the catalog table ``source``; see the module docstring for the
    rules."""
    if not path.is_file():
        raise ProdsearchError(f"no such file: {path}")
    target = Target.of(conn, source)
    conn.commit()  # each chunk is its own transaction
    mapping = dict(mapping or {})
    _check_mapping(mapping, target)
    fmt = detect_format(path, fmt)
    summary = ImportSummary(path=str(path), format=fmt)
    rejects = _Rejects(path.with_name(path.name + ".rejects.jsonl"))
    ignored: set[str] = set()
    chunk: list[dict[str, Any]] = []
    try:
        records = read_records(path, fmt)
        for row in _valid_rows(records, target, mapping, summary, rejects, ignored):
            chunk.append(row)
            if len(chunk) >= chunk_size:
                _flush(conn, chunk, target, summary, progress)
        _flush(conn, chunk, target, summary, progress)
    finally:
        rejects.close()
    if summary.inserted or summary.updated:
        vacuum_analyze(conn, target.source.schema, target.source.table)
    summary.ignored_columns = sorted(ignored)
    if summary.rejected:
        summary.rejects_path = str(rejects.path)
    return summary


def _valid_rows(
    records: Iterable[Record],
    target: Target,
    mapping: Mapping[str, str],
    summary: ImportSummary,
    rejects: _Rejects,
    ignored: set[str],
) -> Iterator[dict[str, Any]]:
    """Each record that can be stored, validated; the others counted and written to the
    rejects file with their reason. Columns the table lacks are added to ``ignored``."""
    reverse = {src: col for col, src in mapping.items()}
    seen: dict[int, int] = {}  # id -> line of its first occurrence

    def reject(rec: Record, reason: str) -> None:
        summary.rejected += 1
        summary.reasons[reason.split(":")[0]] += 1
        rejects.write(rec, reason)

    for rec in records:
        summary.read += 1
        if rec.error is not None:
            reject(rec, rec.error)
            continue
        data = {reverse.get(k, k): v for k, v in rec.data.items()}
        present = [c for c in data if c in target.kinds]
        ignored.update(k for k in data if k not in target.kinds)
        try:
            if target.name_column not in present:
                raise RowError(f"missing {target.name_column}")
            row = validate(data, present, target)
        except RowError as exc:
            reject(rec, str(exc))
            continue
        pid = row[target.id_column]
        first = seen.setdefault(pid, rec.line)
        if first != rec.line:
            reject(rec, f"duplicate {target.id_column} {pid} (first on line {first})")
            continue
        yield row


def _flush(
    conn: psycopg.Connection[Any],
    chunk: list[dict[str, Any]],
    target: Target,
    summary: ImportSummary,
    progress: Callable[[ImportSummary], None] | None,
) -> None:
    """Upsert the chunk (one transaction), count it, and empty it."""
    if not chunk:
        return
    inserted, updated = _upsert(conn, chunk, target)
    summary.inserted += inserted
    summary.updated += updated
    summary.unchanged += len(chunk) - inserted - updated
    chunk.clear()
    if progress is not None:
        progress(summary)
