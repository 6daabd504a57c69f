"""GET /health: is the database reachable, how complete are the embeddings, is the index ready."""

from __future__ import annotations

import asyncio
from typing import Any

from psycopg import sql

from prodsearch.db.names import EMBEDDINGS, INDEX_NAME
from prodsearch.embedding.index import INDEX_ROW_PARAMS, VALIDITY_SQL


async def health_report(state: Any) -> dict[str, Any]:
    searcher = state.searcher
    report: dict[str, Any] = {
        "status": "ok",
        "database": "ok",
        "model": searcher.encoder.model_name,
        "mode": searcher.settings.mode,
        "query_mode": searcher.encoder.mode,
        "index_type": searcher.index_type,
    }
    source = searcher.source
    try:
        async with asyncio.timeout(3), state.pool.connection(timeout=2) as conn:
            cur = await conn.execute(
                sql.SQL(
                    "SELECT (SELECT count(*) FROM {src} AS s WHERE {eligible}), "
                    "(SELECT count(*) FROM {emb}), ({validity})"
                ).format(
                    src=source.qualified,
                    emb=EMBEDDINGS,
                    eligible=source.eligible_sql(),
                    validity=sql.SQL(VALIDITY_SQL),
                ),
                INDEX_ROW_PARAMS,
            )
            row = await cur.fetchone()
            await conn.commit()
    except Exception as exc:  # any failure here means: not serving reliably
        report.update(
            status="unavailable", database="unreachable", error=str(exc) or type(exc).__name__
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
    return report
