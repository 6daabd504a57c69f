"""GET /health: is the database reachable, how complete are the embeddings, is the index ready."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from prodsearch.db.hnsw import INDEX_ROW_PARAMS
from prodsearch.db.names import INDEX_NAME
from prodsearch.db.retry import one_line
from prodsearch.embedding import store
from prodsearch.watch.capture import WatchFigures, read_figures

log = logging.getLogger("prodsearch.api")


async def health_report(state: Any) -> dict[str, Any]:
    searcher = state.searcher
    report: dict[str, Any] = {
        "status": "ok",
        "database": "ok",
        "model": searcher.encoder.model_name,
        "mode": searcher.mode.mode,
        "mode_reason": searcher.mode.reason,
        "query_mode": searcher.encoder.mode,
        "index_type": searcher.index_type,
    }
    source = searcher.source
    try:
        async with asyncio.timeout(3), state.pool.connection(timeout=2) as conn:
            cur = await conn.execute(store.coverage_sql(source), INDEX_ROW_PARAMS)
            row = await cur.fetchone()
            watch = await read_figures(conn)
    except Exception as exc:  # any failure here means: not serving reliably
        # the reason goes to the server's log, never to the client (it may name hosts,
        # users or SQL)
        log.warning("health check failed: %s", one_line(exc) or type(exc).__name__)
        report.update(
            status="unavailable",
            database="unreachable",
            error="the database did not answer; see the server log",
        )
        return report
    assert row is not None
    products, embeddings, valid = row
    report.update(
        products=products,
        embeddings=embeddings,
        coverage=round(100.0 * embeddings / products, 2) if products else 0.0,
        index={
            "name": INDEX_NAME,
            "state": "missing" if valid is None else ("valid" if valid else "invalid"),
        },
    )
    if valid is not True or embeddings < products:
        report["status"] = "degraded"
    report["freshness"] = freshness(watch, state.settings.lag_degraded_s)
    return report


def freshness(watch: WatchFigures, threshold_s: float) -> dict[str, Any]:
    """Continuous sync's lag, in a field of its own: the overall status and the HTTP
    status ignore it, so a load balancer keeps routing to a replica that is merely behind."""
    if not watch.installed:
        state = "not watched"
    elif (watch.oldest_s or 0.0) > threshold_s:
        state = "degraded"
    else:
        state = "ok"
    return {
        "status": state,
        "queued": watch.queued,
        "oldest_pending_s": None if watch.oldest_s is None else round(watch.oldest_s, 3),
        "threshold_s": threshold_s,
        "workers": watch.workers,
        "failed_items": watch.failed,
        "set_aside": watch.set_aside,
    }
