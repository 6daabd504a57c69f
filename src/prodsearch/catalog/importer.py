"""Import catalog files into ``staging_marts.dim_product``: validate, upsert, lose nothing.

Rules (documented in the README):

- Columns: the file's columns (after ``--map target=source``) that name catalog columns
  are written; other columns are ignored and listed in the summary. ``product_id`` and
  ``name`` are required. In JSON Lines a key missing from one line is NULL for that line.
- A row is rejected when: the id is missing, not an integer or not positive; the name is
  empty after text cleaning; the price is not a non-negative number (``12.50``, ``12,50``
  and ``1 234,50`` are numbers); ``stock_qty`` is not an integer; a boolean is not one of
  true/false/1/0/yes/no/t/f/y/n; a value holds invalid UTF-8 or a NUL character; the
  record is malformed (wrong CSV field count, invalid JSON); or its id already appeared
  earlier in the same file (**the first occurrence wins**; later ones are rejected with
  the line of the first).
- Rejected rows go to ``PATH.rejects.jsonl`` (line, reason, the row as read).
- Upsert by ``product_id`` in chunks, one transaction each: a row whose provided columns
  equal the stored ones is *unchanged* (not touched, ``updated_at`` kept).
- The summary always satisfies ``read == inserted + updated + unchanged + rejected``.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from prodsearch.catalog.readers import Record, detect_format, read_records
from prodsearch.catalog.text import clean_text
from prodsearch.db.connect import vacuum_analyze
from prodsearch.errors import ProdsearchError

TABLE = ("staging_marts", "dim_product")
TEXT_COLUMNS = (
    "sku", "part_number", "name", "polish_name", "description", "polish_description",
    "category", "category_path", "brand", "currency", "vehicle", "engine", "position",
)  # fmt: skip
TARGETS = ("product_id", *TEXT_COLUMNS, "price", "stock_qty", "in_stock", "is_deleted")
_TRUE = {"true", "t", "1", "yes", "y"}
_FALSE = {"false", "f", "0", "no", "n"}
_INT = re.compile(r"^[+-]?\d+$")
_BIGINT_MAX = 2**63 - 1
_PRICE_MAX = Decimal("9999999999.99")


class RowError(ValueError):
    """A row that cannot be stored; the message is the reason written to the rejects file."""


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
            "path": self.path, "format": self.format, "read": self.read,
            "inserted": self.inserted, "updated": self.updated, "unchanged": self.unchanged,
            "rejected": self.rejected, "reasons": dict(self.reasons),
            "ignored_columns": self.ignored_columns, "rejects_path": self.rejects_path,
        }  # fmt: skip


def parse_mapping(pairs: Iterable[str]) -> dict[str, str]:
    """``["name=title", "product_id=id"]`` → ``{"name": "title", "product_id": "id"}``."""
    mapping: dict[str, str] = {}
    for pair in pairs:
        target, sep, source = pair.partition("=")
        target, source = target.strip(), source.strip()
        if not sep or not target or not source:
            raise ProdsearchError(f"--map {pair!r}: expected TARGET=SOURCE, e.g. name=title")
        if target not in TARGETS:
            raise ProdsearchError(
                f"--map {pair!r}: {target!r} is not a catalog column; "
                f"use one of {', '.join(TARGETS)}"
            )
        mapping[target] = source
    return mapping


def _int(value: Any, column: str) -> int | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, bool):
        raise RowError(f"{column} is not an integer: {value!r}")
    if isinstance(value, int):
        number = value
    elif isinstance(value, float) and value.is_integer():
        number = int(value)
    elif isinstance(value, str) and _INT.match(value.strip()):
        number = int(value.strip())
    else:
        raise RowError(f"{column} is not an integer: {value!r}")
    if abs(number) > _BIGINT_MAX:
        raise RowError(f"{column} is out of range: {value!r}")
    return number


def _price(value: Any) -> Decimal | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, bool):
        raise RowError(f"price is not a number: {value!r}")
    text = str(value).strip().replace("\u00a0", "").replace(" ", "")
    if "," in text and "." not in text:
        text = text.replace(",", ".")
    try:
        price = Decimal(text)
    except InvalidOperation:
        raise RowError(f"price is not a number: {value!r}") from None
    if not price.is_finite() or price < 0 or price > _PRICE_MAX:
        raise RowError(f"price must be a number from 0 to {_PRICE_MAX}: {value!r}")
    return price.quantize(Decimal("0.01"))


def _bool(value: Any, column: str) -> bool | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise RowError(f"{column} is not a boolean: {value!r}")


def _text(value: Any, column: str) -> str | None:
    if value is None:
        return None
    text = value if isinstance(value, str) else str(value)
    if "\x00" in text:
        raise RowError(f"NUL character in {column}")
    return text


def validate(data: Mapping[str, Any], columns: Iterable[str]) -> dict[str, Any]:
    """Normalise one mapped record; raise RowError with the reason when it cannot be stored."""
    out: dict[str, Any] = {}
    pid = _int(data.get("product_id"), "product_id")
    if pid is None:
        raise RowError("missing product_id")
    if pid <= 0:
        raise RowError(f"product_id must be positive: {pid}")
    out["product_id"] = pid
    for col in columns:
        if col in TEXT_COLUMNS:
            out[col] = _text(data.get(col), col)
    if not clean_text(out.get("name")):
        raise RowError("empty name after cleaning")
    if "price" in columns:
        out["price"] = _price(data.get("price"))
    if "stock_qty" in columns:
        out["stock_qty"] = _int(data.get("stock_qty"), "stock_qty")
    if "in_stock" in columns:
        out["in_stock"] = _bool(data.get("in_stock"), "in_stock")
    if "is_deleted" in columns:
        out["is_deleted"] = bool(_bool(data.get("is_deleted"), "is_deleted"))
    if "currency" in columns and not out.get("currency"):
        out["currency"] = "PLN"
    if ("in_stock" in out or "stock_qty" in out) and out.get("in_stock") is None:
        out["in_stock"] = (out.get("stock_qty") or 0) > 0
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


_NOT_NULL_DEFAULTS = {"in_stock": False, "is_deleted": False, "currency": "PLN"}


def _or_default(row: Mapping[str, Any], column: str) -> Any:
    value = row.get(column)
    return _NOT_NULL_DEFAULTS.get(column) if value is None else value


def _upsert(conn: psycopg.Connection[Any], rows: list[dict[str, Any]]) -> tuple[int, int]:
    """Upsert one chunk; return (inserted, updated). Unchanged rows are not touched."""
    cols = [c for c in TARGETS if any(c in r for r in rows)]
    ident = [sql.Identifier(c) for c in cols]
    data_cols = [c for c in cols if c != "product_id"]
    with conn.transaction(), conn.cursor() as cur:
        cur.execute(
            "CREATE TEMP TABLE IF NOT EXISTS _import_stage ON COMMIT DELETE ROWS "
            "AS SELECT * FROM staging_marts.dim_product WITH NO DATA"
        )
        copy_sql = sql.SQL("COPY _import_stage ({}) FROM STDIN").format(sql.SQL(", ").join(ident))
        with cur.copy(copy_sql) as copy:
            for row in rows:
                copy.write_row([_or_default(row, c) for c in cols])
        query = sql.SQL(
            "WITH up AS ("
            " INSERT INTO {table} AS d ({cols}, updated_at)"
            " SELECT {cols}, now() FROM _import_stage"
            " ON CONFLICT (product_id) DO UPDATE SET {sets}, updated_at = now()"
            " WHERE ({old}) IS DISTINCT FROM ({new})"
            " RETURNING (xmax = 0) AS inserted)"
            " SELECT count(*) FILTER (WHERE inserted), count(*) FILTER (WHERE NOT inserted) FROM up"
        ).format(
            table=sql.Identifier(*TABLE),
            cols=sql.SQL(", ").join(ident),
            sets=sql.SQL(", ").join(
                sql.SQL("{c} = EXCLUDED.{c}").format(c=sql.Identifier(c)) for c in data_cols
            ),
            old=sql.SQL(", ").join(sql.SQL("d.{}").format(sql.Identifier(c)) for c in data_cols),
            new=sql.SQL(", ").join(
                sql.SQL("EXCLUDED.{}").format(sql.Identifier(c)) for c in data_cols
            ),
        )
        inserted, updated = cur.execute(query).fetchone() or (0, 0)
    return int(inserted), int(updated)


def import_file(
    conn: psycopg.Connection[Any],
    path: Path,
    fmt: str | None = None,
    mapping: Mapping[str, str] | None = None,
    chunk_size: int = 5000,
    progress: Callable[[ImportSummary], None] | None = None,
) -> ImportSummary:
    """Stream ``path`` into the catalog; see the module docstring for the rules."""
    if not path.is_file():
        raise ProdsearchError(f"no such file: {path}")
    fmt = detect_format(path, fmt)
    mapping = dict(mapping or {})
    reverse = {source: target for target, source in mapping.items()}
    summary = ImportSummary(path=str(path), format=fmt)
    rejects = _Rejects(path.with_name(path.name + ".rejects.jsonl"))
    seen: dict[int, int] = {}
    ignored: set[str] = set()
    chunk: list[dict[str, Any]] = []

    def flush() -> None:
        if chunk:
            inserted, updated = _upsert(conn, chunk)
            summary.inserted += inserted
            summary.updated += updated
            summary.unchanged += len(chunk) - inserted - updated
            chunk.clear()
            if progress is not None:
                progress(summary)

    def reject(rec: Record, reason: str) -> None:
        summary.rejected += 1
        summary.reasons[reason.split(":")[0]] += 1
        rejects.write(rec, reason)

    try:
        for rec in read_records(path, fmt):
            summary.read += 1
            if rec.error is not None:
                reject(rec, rec.error)
                continue
            data = {reverse.get(k, k): v for k, v in rec.data.items()}
            present = [c for c in data if c in TARGETS]
            ignored.update(k for k in data if k not in TARGETS)
            try:
                if "name" not in present:
                    raise RowError("missing name")
                row = validate(data, present)
            except RowError as exc:
                reject(rec, str(exc))
                continue
            first = seen.setdefault(row["product_id"], rec.line)
            if first != rec.line:
                reject(rec, f"duplicate product_id {row['product_id']} (first on line {first})")
                continue
            chunk.append(row)
            if len(chunk) >= chunk_size:
                flush()
        flush()
    finally:
        rejects.close()
    if summary.inserted or summary.updated:
        vacuum_analyze(conn, *TABLE)
    summary.ignored_columns = sorted(ignored)
    if summary.rejected:
        summary.rejects_path = str(rejects.path)
    return summary
