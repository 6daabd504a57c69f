-- Relevance: Polish-aware lexical search, typo tolerance, a learned Polish→English query
-- map, and the demo catalog's fitment fields.
CREATE EXTENSION IF NOT EXISTS pg_trgm;

-- Fitment of the demo catalog: the vehicle a part is made for and where it goes.
-- Judged relevance and vehicle-aware ranking read them (PRODSEARCH_VEHICLE_COLUMN).
ALTER TABLE staging_marts.dim_product
    ADD COLUMN IF NOT EXISTS vehicle TEXT,      -- e.g. 'VW Golf VII'
    ADD COLUMN IF NOT EXISTS engine TEXT,       -- e.g. '2.0 TDI'
    ADD COLUMN IF NOT EXISTS position TEXT;     -- e.g. 'Front Left'

-- Every lexeme of the full-text index with its document frequency, rebuilt by sync
-- (ts_stat): queries check their words against it and correct unknown ones by trigram
-- similarity (pg_trgm), so "alternater" finds "alternator". Only words are correction
-- targets (terms with digits are part numbers and sizes: most of the vocabulary), so the
-- trigram index covers those alone.
CREATE TABLE IF NOT EXISTS analytics_features.search_terms (
    term TEXT PRIMARY KEY,
    ndoc INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS idx_search_terms_trgm
    ON analytics_features.search_terms USING gin (term gin_trgm_ops) WHERE term !~ '[0-9]';

-- A linear map from query vectors to the catalog's English vector space, learned by sync
-- from the catalog's own (polish_name, name) pairs: a Polish query, embedded by the
-- English model, lands near the English names of the same products.
CREATE TABLE IF NOT EXISTS analytics_features.query_maps (
    model_name TEXT NOT NULL,
    mode       TEXT NOT NULL,
    dim        INTEGER NOT NULL,
    matrix     BYTEA NOT NULL,                  -- float32, dim × dim, row-major
    pairs      INTEGER NOT NULL,
    details    JSONB NOT NULL DEFAULT '{}'::jsonb,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (model_name, mode)
);
