-- Sync support: a fast pre-check of the raw source text, so unchanged rows are skipped in SQL
-- without moving their text to Python; run bookkeeping.
ALTER TABLE analytics_features.product_embeddings
    ADD COLUMN IF NOT EXISTS source_hash TEXT;   -- md5(prep signature || ROW(text columns)::text)

ALTER TABLE analytics_features.embedding_runs
    ADD COLUMN IF NOT EXISTS eligible BIGINT NOT NULL DEFAULT 0,
    ADD COLUMN IF NOT EXISTS pid INTEGER;

CREATE INDEX IF NOT EXISTS idx_embedding_runs_started
    ON analytics_features.embedding_runs (started_at DESC);

-- Search support, kept beside the vectors and written by sync from the source row:
-- full-text over the search fields ('simple' config: works for Polish and English alike)
-- and normalised product codes (SKU, part number) for exact-match lookups.
ALTER TABLE staging_marts.dim_product
    ADD COLUMN IF NOT EXISTS part_number TEXT;

ALTER TABLE analytics_features.product_embeddings
    ADD COLUMN IF NOT EXISTS search_tsv tsvector,
    ADD COLUMN IF NOT EXISTS code_keys TEXT[];

CREATE INDEX IF NOT EXISTS idx_product_embeddings_tsv
    ON analytics_features.product_embeddings USING gin (search_tsv);
CREATE INDEX IF NOT EXISTS idx_product_embeddings_codes
    ON analytics_features.product_embeddings USING gin (code_keys);
