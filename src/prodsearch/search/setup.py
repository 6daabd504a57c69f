"""One way to build a :class:`Searcher`, shared by the API, the CLI and the benches; and
one search without HTTP (the ``search`` command)."""

from __future__ import annotations

from typing import Any

import psycopg

from prodsearch.catalog.source import load_source
from prodsearch.config import SearchMode, Settings
from prodsearch.db import hnsw, migrate
from prodsearch.embedding import modes, querymap
from prodsearch.embedding.encoder import Encoder, encoder_for
from prodsearch.errors import FilterError, SearchError
from prodsearch.search.filters import parse_pairs
from prodsearch.search.language import LanguageGuess
from prodsearch.search.results import SearchOptions, SearchResponse
from prodsearch.search.service import Searcher

LANGUAGE_PAIRS = 3000  # name pairs the language guess learns from (~0.5 s at start-up)


def query_encoder(settings: Settings) -> Encoder:
    """The encoder for search queries (``query_mode`` precision), tuned for one short text
    at a time beside the database, warmed up."""
    encoder = encoder_for(settings, settings.query_mode, for_queries=True)
    encoder.encode(["warm up"])
    return encoder


def build_searcher(
    conn: psycopg.Connection[Any],
    settings: Settings,
    encoder: Encoder | None = None,
    use_query_map: bool = True,
) -> Searcher:
    """A searcher over the configured source, with the index shape and query map that the
    database holds. Call ``await searcher.load_vocabulary(aconn)`` before searching."""
    migrate(conn)  # the schema this code reads (benches open databases embedded earlier)
    encoder = encoder or query_encoder(settings)
    source = load_source(conn, settings)
    index_type = hnsw.current_type(conn)
    # the map is fitted on the documents' vectors (``mode``), whatever encodes the queries
    mode = modes.in_force(conn, settings)
    qmap = querymap.load(conn, encoder.model_name, mode.mode) if use_query_map else None
    # the query's language, from the catalog's own English / Polish name pairs
    language = LanguageGuess(querymap.training_pairs(conn, source, LANGUAGE_PAIRS))
    return Searcher(settings, encoder, source, index_type, qmap, language=language, mode=mode)


def search_once(
    settings: Settings,
    mode: SearchMode,
    query: str,
    limit: int,
    filter_pairs: list[str],
) -> SearchResponse:
    """One search without HTTP, through the searcher the API builds (same query encoder,
    same query map): ``mode`` semantic, filtered or hybrid; ``filter_pairs`` as
    ``KEY=VALUE`` strings. Raises :class:`SearchError` on bad input."""
    import asyncio

    from pgvector.psycopg import register_vector_async

    from prodsearch.db import connect, database_url, migrate

    if mode not in ("semantic", "filtered", "hybrid"):
        raise SearchError(f"mode {mode!r}: use semantic, filtered or hybrid")
    url = database_url(settings)
    with connect(url) as conn:
        migrate(conn)
        searcher = build_searcher(conn, settings)
    try:
        filters = parse_pairs(searcher.source, filter_pairs)
    except FilterError as exc:
        raise SearchError(f"--filter {exc}") from exc

    async def run() -> SearchResponse:
        async with await psycopg.AsyncConnection.connect(url, autocommit=True) as aconn:
            await register_vector_async(aconn)
            await searcher.load_vocabulary(aconn)
            opts = SearchOptions(limit=limit, filters=filters)
            if mode == "hybrid":
                return await searcher.hybrid(aconn, query, opts)
            return await searcher.semantic(aconn, query, opts)

    return asyncio.run(run())
