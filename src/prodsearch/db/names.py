"""Names of the schema objects prodsearch owns (created by ``db/migrations``): the one
place they are spelled. The catalog's table is not here — it is configuration
(``PRODSEARCH_SOURCE_TABLE``, read through :class:`prodsearch.catalog.source.Source`)."""

from __future__ import annotations

from psycopg import sql

SCHEMA = "analytics_features"
EMBEDDINGS_TABLE = "product_embeddings"
INDEX_NAME = "idx_product_embeddings_hnsw"

EMBEDDINGS = sql.Identifier(SCHEMA, EMBEDDINGS_TABLE)
RUNS = sql.Identifier(SCHEMA, "embedding_runs")
TERMS = sql.Identifier(SCHEMA, "search_terms")
QUERY_MAPS = sql.Identifier(SCHEMA, "query_maps")
INDEX = sql.Identifier(SCHEMA, INDEX_NAME)
# a scratch table of the index benchmark (one vector per distinct text)
BENCH_UNIQUE_VECTORS = sql.Identifier(SCHEMA, "bench_unique_vectors")
