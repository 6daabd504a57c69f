"""Field coverage of the catalog: how many eligible (non-deleted) rows have each text field."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psycopg

from prodsearch.catalog import sql as catalog_sql
from prodsearch.catalog.source import Source

STANDARD_FIELDS = ("name", "polish_name", "description", "polish_description")


@dataclass(frozen=True)
class Coverage:
    field: str
    filled: int
    eligible: int

    @property
    def percent(self) -> float:
        return 100.0 * self.filled / self.eligible if self.eligible else 0.0


@dataclass(frozen=True)
class CatalogStats:
    table: str
    total: int
    deleted: int
    coverage: list[Coverage]

    @property
    def eligible(self) -> int:
        return self.total - self.deleted

    def as_dict(self) -> dict[str, Any]:
        return {
            "table": self.table,
            "total": self.total,
            "deleted": self.deleted,
            "eligible": self.eligible,
            "coverage": {
                c.field: {"filled": c.filled, "percent": round(c.percent, 2)} for c in self.coverage
            },
        }


def catalog_stats(conn: psycopg.Connection[Any], source: Source) -> CatalogStats:
    """Coverage of the standard text fields plus the configured text columns (non-empty)."""
    fields = [f for f in STANDARD_FIELDS if f in source.columns]
    fields += [c for c in source.text_columns if c not in fields]
    total, deleted, counts = catalog_sql.coverage_counts(conn, source, fields)
    eligible = total - deleted
    return CatalogStats(
        table=source.name,
        total=total,
        deleted=deleted,
        coverage=[Coverage(f, n, eligible) for f, n in zip(fields, counts, strict=True)],
    )
