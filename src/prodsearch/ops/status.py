"""``prodsearch status``: how complete and fresh are the embeddings, and how is the index."""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg import sql

from prodsearch.catalog.source import Source
from prodsearch.config import Settings
from prodsearch.embedding import index, store
from prodsearch.embedding.model import resolve_model
from prodsearch.embedding.sync import prep_signature


def freshness(conn: psycopg.Connection[Any], source: Source, settings: Settings) -> dict[str, int]:
    """Eligible rows without an embedding, with a stale one, and embeddings without a product."""
    model = resolve_model(settings.model).name
    query = sql.SQL(
        "SELECT count(*) FILTER (WHERE e.product_id IS NULL),"
        " count(*) FILTER (WHERE e.product_id IS NOT NULL AND {stale})"
        " FROM {src} AS s LEFT JOIN {emb} AS e ON e.product_id = s.{id} WHERE {eligible}"
    ).format(
        stale=store.stale_sql(source),
        src=source.qualified,
        emb=store.EMBEDDINGS,
        id=sql.Identifier(source.id_column),
        eligible=source.eligible_sql(),
    )
    row = conn.execute(
        query, {"sig": prep_signature(source, settings), "model": model, "mode": settings.mode}
    ).fetchone()
    assert row is not None
    return {
        "missing": int(row[0]),
        "stale": int(row[1]),
        "orphans": store.count_orphans(conn, source),
    }


def report(conn: psycopg.Connection[Any], source: Source, settings: Settings) -> dict[str, Any]:
    eligible = store.count_eligible(conn, source)
    embeddings = store.count_embeddings(conn)
    fresh = freshness(conn, source, settings)
    last = store.last_run(conn)
    if last is not None:
        started, finished = last.get("started_at"), last.get("finished_at")
        last = {
            "run_id": last["run_id"],
            "status": last["status"],
            "mode": last["mode"],
            "started_at": str(started),
            "finished_at": str(finished) if finished else None,
            "duration_s": round((finished - started).total_seconds(), 1) if finished else None,
            "embedded": last["embedded"],
            "skipped_unchanged": last["skipped_unchanged"],
            "deduplicated": last["deduplicated"],
            "deleted": last["deleted"],
            "failed": last["failed"],
            "error": last["error"],
        }
    idx = index.status(conn)
    size = conn.execute("SELECT pg_size_pretty(pg_database_size(current_database()))").fetchone()
    return {
        "source": source.name,
        "eligible_products": eligible,
        "embeddings": embeddings,
        "coverage_percent": round(100.0 * (eligible - fresh["missing"]) / eligible, 2)
        if eligible
        else 0.0,
        **fresh,
        "configured_mode": settings.mode,
        "last_run": last,
        "index": {
            k: idx.get(k)
            for k in (
                "name",
                "exists",
                "type",
                "size",
                "size_bytes",
                "m",
                "ef_construction",
                "valid",
                "ready",
                "rows",
            )
        },
        "database_size": size[0] if size else None,
    }
