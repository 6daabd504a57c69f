"""``prodsearch status``: how complete and fresh are the embeddings, and how is the index."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import psycopg

from prodsearch.catalog.source import Source
from prodsearch.config import Settings
from prodsearch.db import hnsw, introspect
from prodsearch.db.hnsw import IndexStatus
from prodsearch.embedding import modes, runs_sql, store
from prodsearch.embedding.model import resolve_model
from prodsearch.embedding.sync import prep_signature
from prodsearch.watch import capture
from prodsearch.watch.capture import CaptureStatus


@dataclass(frozen=True)
class Freshness:
    missing: int  # eligible products without an embedding
    stale: int  # embeddings whose text, model or mode changed since
    orphans: int  # embeddings of deleted or gone products


@dataclass(frozen=True)
class LastRun:
    run_id: int
    status: str
    mode: str
    started_at: str
    finished_at: str | None
    duration_s: float | None
    embedded: int
    skipped_unchanged: int
    deduplicated: int
    deleted: int
    failed: int
    error: str | None
    stage: str  # the step it is in, or stopped in (plan … search support, done)


@dataclass(frozen=True)
class StatusReport:
    source: str
    eligible_products: int
    embeddings: int
    coverage_percent: float
    freshness: Freshness
    configured_mode: str  # PRODSEARCH_MODE (auto: the recorded mode, or the CPU's choice)
    mode: str  # the documents' mode in force (embedding/modes.py)
    mode_reason: str  # why that mode
    last_run: LastRun | None
    index: IndexStatus
    database_size: str | None
    capture: CaptureStatus  # continuous sync: triggers, queue depth, oldest pending change

    def as_dict(self) -> dict[str, Any]:
        """Flat JSON: the freshness counts at the top level, as ``status --json`` prints."""
        out = asdict(self)
        out.update(out.pop("freshness"))
        out["index"].pop("definition", None)
        out["capture"] = self.capture.as_dict()
        return out


def freshness(conn: psycopg.Connection[Any], source: Source, settings: Settings) -> Freshness:
    """Eligible rows without an embedding, with a stale one, and embeddings without a product."""
    model = resolve_model(settings.model, settings.models_dir).name
    # stale: what `embed` with these settings would rewrite (an explicit other mode: all)
    mode = modes.settle(conn, settings.mode, model, switch=True, write=False).mode
    missing, stale = store.count_missing_and_stale(
        conn, source, prep_signature(source, settings), model, mode
    )
    return Freshness(missing, stale, store.count_orphans(conn, source))


def _last_run(conn: psycopg.Connection[Any]) -> LastRun | None:
    last = runs_sql.last_run(conn)
    if last is None:
        return None
    started, finished = last.started_at, last.finished_at
    return LastRun(
        run_id=last.run_id,
        status=last.status,
        mode=last.mode,
        started_at=str(started),
        finished_at=str(finished) if finished else None,
        duration_s=round((finished - started).total_seconds(), 1) if finished else None,
        embedded=last.embedded,
        skipped_unchanged=last.skipped_unchanged,
        deduplicated=last.deduplicated,
        deleted=last.deleted,
        failed=last.failed,
        error=last.error,
        stage=last.stage,
    )


def report(conn: psycopg.Connection[Any], source: Source, settings: Settings) -> StatusReport:
    eligible = store.count_eligible(conn, source)
    fresh = freshness(conn, source, settings)
    return StatusReport(
        source=source.name,
        eligible_products=eligible,
        embeddings=store.count_embeddings(conn),
        coverage_percent=round(100.0 * (eligible - fresh.missing) / eligible, 2)
        if eligible
        else 0.0,
        freshness=fresh,
        configured_mode=settings.mode,
        mode=(in_force := modes.in_force(conn, settings)).mode,
        mode_reason=in_force.reason,
        last_run=_last_run(conn),
        index=hnsw.status(conn),
        database_size=introspect.database_size(conn),
        capture=capture.status(conn),
    )
