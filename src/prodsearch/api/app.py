"""The FastAPI app: search endpoints, health, metrics, the web page.

The model loads once at start-up; database access goes through an async pool.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib import resources
from typing import Any

import orjson
import psycopg
from fastapi import Depends, FastAPI, Header, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from psycopg.errors import QueryCanceled
from psycopg_pool import AsyncConnectionPool, PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from prodsearch.api.guards import BodyLimitMiddleware, with_connection
from prodsearch.api.metrics import CONTENT_TYPE, Metrics
from prodsearch.api.models import (
    FilteredRequest,
    FiltersBody,
    HealthBody,
    HybridRequest,
    SearchBody,
    SemanticRequest,
    SuggestBody,
    errors,
)
from prodsearch.config import Settings, get_settings
from prodsearch.db.retry import one_line
from prodsearch.errors import DatabaseUnavailable, InputError, ProdsearchError
from prodsearch.search.results import MAX_EF, MIN_EF, SearchOptions, SearchResponse
from prodsearch.search.service import Searcher
from prodsearch.watch.capture import WatchFigures

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


def _error_details(errors: Any) -> list[dict[str, Any]]:
    """Validation errors without the offending input (never echoed back), JSON-safe."""
    out = []
    for err in errors:
        item = {k: v for k, v in err.items() if k not in ("input", "ctx", "url")}
        text = json.dumps(item, default=str, ensure_ascii=False)  # an unpaired surrogate
        out.append(json.loads(text.encode("utf-8", "replace")))  # becomes "?", not a 500
    return out


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

    read = settings.read_database_url
    state.pool = AsyncConnectionPool(
        read.get_secret_value() if read is not None else state.database_url,
        min_size=2,
        max_size=16,
        open=False,
        configure=configure,
        kwargs={
            "connect_timeout": max(1, round(settings.request_timeout_s)),
            "options": f"-c statement_timeout={int(settings.request_timeout_s * 1000)}",
        },
        timeout=settings.request_timeout_s,
    )
    await state.pool.open(wait=True, timeout=30)
    # the vocabulary, corpus statistics and probes are read once, on a connection of their
    # own: without the per-request statement timeout, which a cold cache at 278k products
    # (the first read after a database restart) outlasts
    async with await psycopg.AsyncConnection.connect(
        read.get_secret_value() if read is not None else state.database_url, autocommit=True
    ) as aconn:
        await register_vector_async(aconn)
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
    if state.settings.cors_origins:
        origins = [o.strip() for o in state.settings.cors_origins.split(",") if o.strip()]
        app.add_middleware(
            CORSMiddleware,
            allow_origins=origins,
            allow_methods=["GET", "POST"],
            allow_headers=["Content-Type", "X-API-Key"],
        )
    app.add_middleware(BodyLimitMiddleware, limit=state.settings.max_body_bytes)
    app.add_middleware(ObserveMiddleware, metrics=state.metrics)
    _search_routes(app, state)
    _product_routes(app, state)
    _suggest_routes(app, state)
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
                "detail": _error_details(errors),
            },
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_req: Request, exc: StarletteHTTPException) -> ORJSONResponse:
        """401, 404 for an unknown path, 400 for a body that is not JSON: the same shape
        as every other error."""
        return ORJSONResponse(
            status_code=exc.status_code,
            content={"error": str(exc.detail)},
            headers=getattr(exc, "headers", None),
        )

    @app.exception_handler(ProdsearchError)
    async def _expected(_req: Request, exc: ProdsearchError) -> ORJSONResponse:
        """The one error tree, mapped once: input the caller got wrong is a 422 (a missing
        product a 404) with our own message naming what is allowed; a database we cannot
        reach a 503; anything else of ours a 500. Only input errors carry their message:
        the others may name hosts or settings, so they go to the log."""
        if isinstance(exc, InputError):
            status = 404 if getattr(exc, "not_found", False) else 422
            return ORJSONResponse(status_code=status, content={"error": str(exc)})
        log.warning("request failed: %s", one_line(exc))
        if isinstance(exc, DatabaseUnavailable):
            return ORJSONResponse(status_code=503, content={"error": "database unavailable"})
        return ORJSONResponse(status_code=500, content={"error": "internal error (logged)"})

    @app.exception_handler(PoolTimeout)
    async def _db_down(_req: Request, exc: PoolTimeout) -> ORJSONResponse:
        """No connection free in time: the pool's own text stays in the log."""
        log.warning("database unavailable: %s", one_line(exc))
        return ORJSONResponse(status_code=503, content={"error": "database unavailable"})

    @app.exception_handler(psycopg.OperationalError)
    async def _db_lost(_req: Request, exc: psycopg.OperationalError) -> ORJSONResponse:
        """A lost connection or a query past the statement timeout: no SQL in the body."""
        what = "timed out" if isinstance(exc, QueryCanceled) else "unavailable"
        log.warning("database %s: %s", what, one_line(exc))
        return ORJSONResponse(status_code=503, content={"error": f"database {what}"})

    @app.exception_handler(Exception)
    async def _unexpected(_req: Request, exc: Exception) -> ORJSONResponse:
        """Anything else: logged with its traceback here, never sent to the client."""
        log.error("unexpected error", exc_info=exc)
        return ORJSONResponse(status_code=500, content={"error": "internal error (logged)"})


def _search_docs(*extra: int) -> dict[str, Any]:
    """What a search route answers, for /openapi.json."""
    return {
        "response_model": SearchBody,
        "responses": errors(400, 401, 413, 422, 503, *extra),
    }


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


async def _answer(state: State, resp: SearchResponse, query: str) -> ORJSONResponse:
    """A text search's body; one that found nothing (its filters exclude every product)
    carries completions of the query instead, so the shopper has somewhere to go."""
    state.metrics.observe_search(resp.timings)
    body = resp.as_dict()
    if not resp.results:
        from prodsearch.suggest.service import MAX_PREFIX_CHARS, suggest

        found = await with_connection(state.pool, lambda c: suggest(c, query[:MAX_PREFIX_CHARS], 5))
        body["suggestions"] = [c.as_dict() for c in found.completions]
    return ORJSONResponse(body)


def _search_routes(app: FastAPI, state: State) -> None:
    """Search by text: semantic, filtered, hybrid."""
    guarded = _key_check(state)

    @app.post("/search/semantic", dependencies=guarded, **_search_docs())
    async def semantic(body: SemanticRequest) -> ORJSONResponse:
        resp = await with_connection(
            state.pool, lambda c: state.searcher.semantic(c, body.query, body.options())
        )
        return await _answer(state, resp, body.query)

    @app.post("/search/filtered", dependencies=guarded, **_search_docs())
    async def filtered(body: FilteredRequest) -> ORJSONResponse:
        resp = await with_connection(
            state.pool, lambda c: state.searcher.semantic(c, body.query, body.options())
        )
        return await _answer(state, resp, body.query)

    @app.post("/search/hybrid", dependencies=guarded, **_search_docs())
    async def hybrid(body: HybridRequest) -> ORJSONResponse:
        resp = await with_connection(
            state.pool,
            lambda c: state.searcher.hybrid(c, body.query, body.options(), body.rrf_k),
        )
        return await _answer(state, resp, body.query)


def _product_routes(app: FastAPI, state: State) -> None:
    """Search from a product (similar products), and the filter values."""
    guarded = _key_check(state)

    @app.get("/search/similar/{product_id}", dependencies=guarded, **_search_docs(404))
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
        resp = await with_connection(
            state.pool, lambda c: state.searcher.similar(c, product_id, opts)
        )
        return _json(resp, state.metrics)

    @app.get(
        "/search/filters",
        dependencies=guarded,
        response_model=FiltersBody,
        responses=errors(401, 503),
    )
    async def filter_values() -> dict[str, Any]:
        """Allowed filter keys, and the values of the text ones (for the web page)."""
        from prodsearch.search.facets import facet_values

        return await with_connection(state.pool, lambda c: facet_values(c, state.searcher.source))


def _suggest_routes(app: FastAPI, state: State) -> None:
    """Search-as-you-type."""
    from prodsearch.suggest.service import MAX_PREFIX_CHARS, MAX_SUGGESTIONS, suggest

    @app.get(
        "/suggest",
        dependencies=_key_check(state),
        response_model=SuggestBody,
        responses=errors(401, 422, 503),
    )
    async def suggestions(
        q: str = Query(
            min_length=1,
            max_length=MAX_PREFIX_CHARS,
            description="What the shopper has typed so far (diacritics optional, typos ok).",
        ),
        limit: int = Query(8, ge=1, le=MAX_SUGGESTIONS),
    ) -> ORJSONResponse:
        """Query completions from the catalog (product types in English and Polish,
        brands, vehicles and their combinations), each with its product count."""
        found = await with_connection(state.pool, lambda c: suggest(c, q, limit))
        return ORJSONResponse(found.as_dict())


async def _watch_figures(state: State) -> WatchFigures | None:
    """Continuous sync's figures, or None when the database does not answer in time."""
    from prodsearch.watch.capture import read_figures

    try:
        async with asyncio.timeout(3), state.pool.connection(timeout=2) as conn:
            return await read_figures(conn)
    except Exception as exc:  # metrics of this process are still worth serving
        log.warning("continuous sync figures unavailable: %s", type(exc).__name__)
        return None


def _service_routes(app: FastAPI, state: State) -> None:
    """Health, metrics and the web page."""

    @app.get("/health", response_model=HealthBody, responses={503: {"model": HealthBody}})
    async def health() -> ORJSONResponse:
        from prodsearch.api.health import health_report

        report = await health_report(state)
        return ORJSONResponse(
            status_code=200 if report["database"] == "ok" else 503, content=report
        )

    @app.get("/metrics", response_class=PlainTextResponse)
    async def metrics() -> Response:
        body = state.metrics.render()
        figures = await _watch_figures(state)
        if figures is not None:  # the database answered: continuous sync's figures too
            body += state.metrics.render_watch(figures)
        return Response(body, media_type=CONTENT_TYPE)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def page() -> HTMLResponse:
        html = (resources.files("prodsearch.api") / "static" / "index.html").read_text("utf-8")
        return HTMLResponse(html)
