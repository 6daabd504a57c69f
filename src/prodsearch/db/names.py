"""Names of the schema objects prodsearch owns (created by ``db/migrations``): the one
place they are spelled. The catalog a deployment searches is configuration
(``PRODSEARCH_SOURCE_TABLE``, read through :class:`prodsearch.catalog.source.Source`);
``DEMO_CATALOG`` is only the table the migrations create for the demo catalog."""

from __future__ import annotations

from psycopg import sql

SCHEMA = "analytics_features"
EMBEDDINGS_TABLE = "product_embeddings"
INDEX_NAME = "idx_product_embeddings_hnsw"
DEMO_CATALOG_SCHEMA = "staging_marts"
DEMO_CATALOG = f"{DEMO_CATALOG_SCHEMA}.dim_product"  # the demo catalog's table (0001)

# schema-qualified, as text (psql, tests)
EMBEDDINGS_NAME = f"{SCHEMA}.{EMBEDDINGS_TABLE}"
RUNS_NAME = f"{SCHEMA}.embedding_runs"
TERMS_NAME = f"{SCHEMA}.search_terms"
QUERY_MAPS_NAME = f"{SCHEMA}.query_maps"
QUEUE_NAME = f"{SCHEMA}.embedding_queue"
WATCH_WORKERS_NAME = f"{SCHEMA}.watch_workers"
SUGGESTIONS_NAME = f"{SCHEMA}.search_suggestions"
FAILED_ITEMS_NAME = f"{SCHEMA}.embedding_failed_items"
ENCODER_MODE_NAME = f"{SCHEMA}.encoder_mode"

EMBEDDINGS = sql.Identifier(SCHEMA, EMBEDDINGS_TABLE)
RUNS = sql.Identifier(SCHEMA, "embedding_runs")
TERMS = sql.Identifier(SCHEMA, "search_terms")
QUERY_MAPS = sql.Identifier(SCHEMA, "query_maps")
SUGGESTIONS = sql.Identifier(SCHEMA, "search_suggestions")
FAILED_ITEMS = sql.Identifier(SCHEMA, "embedding_failed_items")
ENCODER_MODE = sql.Identifier(SCHEMA, "encoder_mode")  # the catalog's recorded mode (0012)
# continuous sync: the queue of changed ids, the workers' counters, the capture functions
QUEUE = sql.Identifier(SCHEMA, "embedding_queue")
WATCH_WORKERS = sql.Identifier(SCHEMA, "watch_workers")
CAPTURE_FUNCTION = sql.Identifier(SCHEMA, "prodsearch_capture")
CAPTURE_TRUNCATE_FUNCTION = sql.Identifier(SCHEMA, "prodsearch_capture_truncate")
CAPTURE_TRIGGERS = (
    "prodsearch_capture_rows",
    "prodsearch_capture_update",
    "prodsearch_capture_truncate",
)
QUEUE_CHANNEL = "prodsearch_queue"  # NOTIFY channel
INDEX = sql.Identifier(SCHEMA, INDEX_NAME)
# a scratch table of the index benchmark (one vector per distinct text)
BENCH_UNIQUE_VECTORS = sql.Identifier(SCHEMA, "bench_unique_vectors")
# … and its copy of the vectors whose last share is inserted into a built index
BENCH_LIVE_VECTORS = sql.Identifier(SCHEMA, "bench_live_vectors")
