"""The source catalog table, as configured, validated against ``information_schema``.

Any table can be the source: configuration names the table, its id column, the text
columns joined into the embedded text, a soft-delete predicate and the filterable
columns. Every identifier reaches SQL through ``psycopg.sql.Identifier``; the delete
predicate is parsed from a small grammar, never pasted into SQL.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

from prodsearch.config import Settings
from prodsearch.db import introspect
from prodsearch.errors import ConfigError

_PREDICATE = re.compile(
    r"^\s*(?P<not>NOT\s+)?(?P<col>[A-Za-z_][A-Za-z0-9_]*)\s*(?P<null>IS\s+(?:NOT\s+)?NULL)?\s*$",
    re.IGNORECASE,
)


def _split(value: str) -> tuple[str, ...]:
    return tuple(p.strip() for p in value.split(",") if p.strip())


@dataclass(frozen=True)
class Source:
    schema: str
    table: str
    id_column: str
    text_columns: tuple[str, ...]
    deleted: str  # the configured predicate text ('' = no soft delete)
    filter_columns: tuple[str, ...]
    columns: dict[str, str]  # every column of the table -> data type
    search_columns: tuple[str, ...] = ()  # full-text fields (those configured that exist)
    code_columns: tuple[str, ...] = ()  # product codes for exact match (those that exist)

    @property
    def hash_columns(self) -> tuple[str, ...]:
        """Columns whose change must refresh a stored row (text, full-text and codes)."""
        return tuple(dict.fromkeys(self.text_columns + self.search_columns + self.code_columns))

    @classmethod
    def from_settings(cls, settings: Settings) -> Source:
        schema, _, table = settings.source_table.rpartition(".")
        return cls(
            schema=schema or "public",
            table=table,
            id_column=settings.source_id_column,
            text_columns=_split(settings.text_fields),
            deleted=settings.source_deleted.strip(),
            filter_columns=_split(settings.filter_columns),
            columns={},
            search_columns=_split(settings.search_fields),
            code_columns=_split(settings.code_columns),
        )

    @property
    def qualified(self) -> sql.Identifier:
        return sql.Identifier(self.schema, self.table)

    @property
    def name(self) -> str:
        return f"{self.schema}.{self.table}"

    def validate(self, conn: psycopg.Connection[Any]) -> Source:
        """Check the table and every named column exist; return a copy that knows the columns."""
        found = introspect.columns(conn, self.schema, self.table)
        if not found:
            tables = introspect.user_tables(conn)
            raise ConfigError(
                f"source table {self.name} does not exist (PRODSEARCH_SOURCE_TABLE); "
                f"tables found: {', '.join(tables) or 'none'}"
            )
        wanted = {
            "id column (PRODSEARCH_SOURCE_ID_COLUMN)": [self.id_column],
            "text column (PRODSEARCH_TEXT_FIELDS)": list(self.text_columns),
            "filter column (PRODSEARCH_FILTER_COLUMNS)": list(self.filter_columns),
        }
        if self.deleted:
            match = _PREDICATE.match(self.deleted)
            if not match:
                raise ConfigError(
                    f"PRODSEARCH_SOURCE_DELETED={self.deleted!r} is not understood; use COL, "
                    "NOT COL, COL IS NULL or COL IS NOT NULL (or empty for no soft delete)"
                )
            wanted["delete predicate column (PRODSEARCH_SOURCE_DELETED)"] = [match["col"]]
        for role, cols in wanted.items():
            missing = [c for c in cols if c not in found]
            if missing:
                raise ConfigError(
                    f"{self.name} has no {role} {', '.join(missing)}; "
                    f"its columns are: {', '.join(found)}"
                )
        if not self.text_columns:
            raise ConfigError("PRODSEARCH_TEXT_FIELDS names no column")
        search = tuple(c for c in self.search_columns if c in found) or self.text_columns
        codes = tuple(c for c in self.code_columns if c in found)
        return Source(
            **{**self.__dict__, "columns": found, "search_columns": search, "code_columns": codes}
        )

    def deleted_sql(self) -> sql.Composable:
        """SQL that is true for soft-deleted rows (FALSE when there is no soft delete)."""
        if not self.deleted:
            return sql.SQL("FALSE")
        match = _PREDICATE.match(self.deleted)
        assert match is not None
        col = sql.Identifier(match["col"])
        if match["null"]:
            return sql.SQL("({} {})").format(
                col, sql.SQL("IS NOT NULL" if "NOT" in match["null"].upper() else "IS NULL")
            )
        if match["not"]:
            return sql.SQL("(NOT coalesce({}, false))").format(col)
        return sql.SQL("coalesce({}, false)").format(col)

    def sql_parts(self) -> dict[str, sql.Composable]:
        """The names SQL about this source is written with (alias ``s``): ``src`` (the
        table), ``id`` (its id column) and ``eligible`` (live rows)."""
        return {
            "src": self.qualified,
            "id": sql.Identifier(self.id_column),
            "eligible": self.eligible_sql(),
        }

    @property
    def deleted_column(self) -> str | None:
        """The column the soft-delete predicate reads (None: no soft delete)."""
        match = _PREDICATE.match(self.deleted) if self.deleted else None
        return match["col"] if match else None

    def live_flag(self) -> tuple[str, bool] | None:
        """For a boolean soft-delete flag (``COL`` or ``NOT COL``): the column and the
        value that marks a row live — what a new row gets when its file says nothing."""
        match = _PREDICATE.match(self.deleted) if self.deleted else None
        if match is None or match["null"]:
            return None
        return match["col"], bool(match["not"])

    def eligible_sql(self) -> sql.Composable:
        return sql.SQL("NOT {}").format(self.deleted_sql())


def load_source(conn: psycopg.Connection[Any], settings: Settings) -> Source:
    return Source.from_settings(settings).validate(conn)
