"""One way to build a :class:`Searcher`, shared by the API, the CLI and the benches."""

from __future__ import annotations

from typing import Any

import psycopg

from prodsearch.catalog.source import load_source
from prodsearch.config import Settings
from prodsearch.embedding import index, querymap
from prodsearch.embedding.encoder import Encoder, load_encoder
from prodsearch.search.service import Searcher


def query_encoder(settings: Settings) -> Encoder:
    """The encoder for search queries (``query_mode`` precision), tuned for one short text
    at a time beside the database, warmed up."""
    encoder = load_encoder(
        settings.query_mode, settings.model, models_dir=settings.models_dir, for_queries=True
    )
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
    encoder = encoder or query_encoder(settings)
    source = load_source(conn, settings)
    index_type = index.current_type(conn)
    # the map is fitted on the documents' vectors (``mode``), whatever encodes the queries
    qmap = querymap.load(conn, encoder.model_name, settings.mode) if use_query_map else None
    conn.commit()
    return Searcher(settings, encoder, source, index_type, qmap)
