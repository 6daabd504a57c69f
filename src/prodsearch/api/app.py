"""The FastAPI app: search endpoints, health, metrics, the web page.

The model loads once at start-up; database access goes through an async pool.
"""

from __future__ import annotations

import hmac
import json
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib import resources
from typing import Any

import orjson
from fastapi import Depends, FastAPI, Header, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from psycopg_pool import AsyncConnectionPool, PoolTimeout
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from prodsearch.api.metrics import CONTENT_TYPE, Metrics
from prodsearch.api.models import FilteredRequest, HybridRequest, SemanticRequest
from prodsearch.config import Settings, get_settings
from prodsearch.search.results import (
    MAX_EF,
    MIN_EF,
    SearchError,
    SearchOptions,
    SearchResponse,
)
from prodsearch.search.service import Searcher

log = logging.getLogger("prodsearch.api")


class ORJSONResponse(JSONResponse):
    """JSON rendered by orjson (numpy-aware)."""

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, option=orjson.OPT_SERIALIZE_NUMPY)


class ObserveMiddleware:
    """Per-request metrics and an access log line: plain ASGI (no per-request task hop)."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def observe_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, observe_send)
        finally:
            elapsed = time.perf_counter() - started
            route = scope.get("route")
            endpoint = getattr(route, "path", None) or "unmatched"
            self.metrics.observe(endpoint, scope["method"], status, elapsed)
            if log.isEnabledFor(logging.INFO):
                log.info("%s %s %d %.1f ms", scope["method"], scope["path"], status, elapsed * 1000)


class State:
    settings: Settings
    pool: AsyncConnectionPool
    searcher: Searcher
    metrics: Metrics
    database_url: str


def _validation_message(errors: list[Any]) -> str:
    parts = []
    for err in errors:
        where = ".".join(str(p) for p in err.get("loc", ()) if p != "body") or "body"
        parts.append(f"{where}: {err.get('msg', 'invalid')}")
    return "; ".join(parts)


async def _startup(state: State) -> None:
    from pgvector.psycopg import register_vector_async

    from prodsearch.db import connect, database_url, migrate
    from prodsearch.search.setup import build_searcher

    settings = state.settings
    state.database_url = database_url(settings)
    with connect(state.database_url) as conn:
        migrate(conn)
        searcher = build_searcher(conn, settings)

    async def configure(conn: Any) -> None:
        await register_vector_async(conn)
        await conn.set_autocommit(True)

    state.pool = AsyncConnectionPool(
        state.database_url,
        min_size=2,
        max_size=16,
        open=False,
        configure=configure,
        kwargs={"connect_timeout": 5},
        timeout=5,
    )
    await state.pool.open(wait=True, timeout=30)
    async with state.pool.connection() as aconn:
        await searcher.load_vocabulary(aconn)
    state.searcher = searcher


def create_app(settings: Settings | None = None) -> FastAPI:
    state = State()
    state.settings = settings or get_settings()
    state.metrics = Metrics()

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await _startup(state)
        try:
            yield
        finally:
            await state.pool.close()

    app = FastAPI(
        title="prodsearch",
        version="0.1.0",
        lifespan=lifespan,
        default_response_class=ORJSONResponse,
        description="Semantic, filtered, hybrid and similar-product search over PostgreSQL.",
    )
    app.state.prodsearch = state

    _exception_handlers(app)
    app.add_middleware(ObserveMiddleware, metrics=state.metrics)
    _search_routes(app, state)
    _product_routes(app, state)
    _service_routes(app, state)
    return app


def _exception_handlers(app: FastAPI) -> None:
    """Errors as JSON with one readable ``error`` line: 422 bad input, 404 unknown
    product, 503 database unavailable."""

    @app.exception_handler(RequestValidationError)
    async def _invalid(_req: Request, exc: RequestValidationError) -> ORJSONResponse:
        errors = exc.errors()
        return ORJSONResponse(
            status_code=422,
            content={
                "error": _validation_message(list(errors)),
                "detail": json.loads(json.dumps(list(errors), default=str)),
            },
        )

    @app.exception_handler(SearchError)
    async def _search_error(_req: Request, exc: SearchError) -> ORJSONResponse:
        return ORJSONResponse(
            status_code=404 if exc.not_found else 422, content={"error": str(exc)}
        )

    @app.exception_handler(PoolTimeout)
    async def _db_down(_req: Request, exc: PoolTimeout) -> ORJSONResponse:
        return ORJSONResponse(status_code=503, content={"error": f"database unavailable: {exc}"})


def _key_check(state: State) -> list[Any]:
    """The dependency every search route carries: the API key when one is configured."""

    async def require_key(x_api_key: str | None = Header(default=None)) -> None:
        """Compared in constant time. Async: FastAPI runs a plain ``def`` dependency in
        its thread pool, a hand-off per request."""
        expected = state.settings.api_key
        if expected is not None and not hmac.compare_digest(
            (x_api_key or "").encode(), expected.get_secret_value().encode()
        ):
            raise HTTPException(status_code=401, detail="missing or wrong X-API-Key header")

    return [Depends(require_key)]


def _json(resp: SearchResponse, metrics: Metrics) -> ORJSONResponse:
    metrics.observe_search(resp.timings)
    return ORJSONResponse(resp.as_dict())


def _search_routes(app: FastAPI, state: State) -> None:
    """Search by text: semantic, filtered, hybrid."""
    guarded = _key_check(state)

    @app.post("/search/semantic", dependencies=guarded)
    async def semantic(body: SemanticRequest) -> ORJSONResponse:
        async with state.pool.connection() as conn:
            resp = await state.searcher.semantic(conn, body.query, body.options())
            return _json(resp, state.metrics)

    @app.post("/search/filtered", dependencies=guarded)
    async def filtered(body: FilteredRequest) -> ORJSONResponse:
        async with state.pool.connection() as conn:
            resp = await state.searcher.semantic(conn, body.query, body.options())
            return _json(resp, state.metrics)

    @app.post("/search/hybrid", dependencies=guarded)
    async def hybrid(body: HybridRequest) -> ORJSONResponse:
        async with state.pool.connection() as conn:
            resp = await state.searcher.hybrid(conn, body.query, body.options(), body.rrf_k)
            return _json(resp, state.metrics)


def _product_routes(app: FastAPI, state: State) -> None:
    """Search from a product (similar products), and the filter values."""
    guarded = _key_check(state)

    @app.get("/search/similar/{product_id}", dependencies=guarded)
    async def similar(
        product_id: int,
        limit: int = Query(20, ge=1, le=100),
        offset: int = Query(0, ge=0, le=10_000),
        ef_search: int | None = Query(None, ge=MIN_EF, le=MAX_EF),
        exact: bool = Query(False),
        explain: bool = Query(False),
        facets: bool = Query(False),
    ) -> ORJSONResponse:
        opts = SearchOptions(
            limit=limit,
            offset=offset,
            ef_search=ef_search,
            exact=exact,
            explain=explain,
            facets=facets,
        )
        async with state.pool.connection() as conn:
            resp = await state.searcher.similar(conn, product_id, opts)
            return _json(resp, state.metrics)

    @app.get("/search/filters", dependencies=guarded)
    async def filter_values() -> dict[str, Any]:
        """Allowed filter keys, and the values of the text ones (for the web page)."""
        from prodsearch.search.facets import facet_values

        async with state.pool.connection() as conn:
            return await facet_values(conn, state.searcher.source)


def _service_routes(app: FastAPI, state: State) -> None:
    """Health, metrics and the web page."""

    @app.get("/health")
    async def health() -> ORJSONResponse:
        from prodsearch.api.health import health_report

        report = await health_report(state)
        return ORJSONResponse(
            status_code=200 if report["database"] == "ok" else 503, content=report
        )

    @app.get("/metrics", response_class=PlainTextResponse)
    async def metrics() -> Response:
        return Response(state.metrics.render(), media_type=CONTENT_TYPE)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def page() -> HTMLResponse:
        html = (resources.files("prodsearch.api") / "static" / "index.html").read_text("utf-8")
        return HTMLResponse(html)
