-- prodsearch schema v1: catalog, embeddings, embedding runs.
-- Names kept from the original platform so its monitoring SQL runs unchanged.
CREATE EXTENSION IF NOT EXISTS vector;

CREATE SCHEMA IF NOT EXISTS staging_marts;
CREATE SCHEMA IF NOT EXISTS analytics_features;

CREATE TABLE IF NOT EXISTS staging_marts.dim_product (
    product_id         BIGINT PRIMARY KEY,
    sku                TEXT,
    name               TEXT NOT NULL,
    polish_name        TEXT,
    description        TEXT,
    polish_description TEXT,
    category           TEXT,            -- leaf category, e.g. 'Brake Pads'
    category_path      TEXT,            -- parent > child, e.g. 'Brakes > Brake Pads'
    brand              TEXT,
    price              NUMERIC(12, 2),
    currency           TEXT NOT NULL DEFAULT 'PLN',
    stock_qty          INTEGER,
    in_stock           BOOLEAN NOT NULL DEFAULT false,
    is_deleted         BOOLEAN NOT NULL DEFAULT false,
    updated_at         TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE INDEX IF NOT EXISTS idx_dim_product_category ON staging_marts.dim_product (category);
CREATE INDEX IF NOT EXISTS idx_dim_product_brand ON staging_marts.dim_product (brand);
CREATE INDEX IF NOT EXISTS idx_dim_product_sku ON staging_marts.dim_product (sku);

CREATE TABLE IF NOT EXISTS analytics_features.product_embeddings (
    product_id   BIGINT PRIMARY KEY,
    embedding    VECTOR(384) NOT NULL,
    content_hash TEXT NOT NULL,          -- hash(model, mode, prepared text): sync skips unchanged rows
    model_name   TEXT NOT NULL,
    mode         TEXT NOT NULL,          -- encoder mode: exact | bf16 | int8
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at   TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS analytics_features.embedding_runs (
    run_id            BIGSERIAL PRIMARY KEY,
    started_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    finished_at       TIMESTAMPTZ,
    status            TEXT NOT NULL DEFAULT 'running'
                      CHECK (status IN ('running', 'succeeded', 'failed', 'interrupted')),
    mode              TEXT NOT NULL,
    model_name        TEXT NOT NULL,
    settings          JSONB NOT NULL DEFAULT '{}'::jsonb,
    scanned           BIGINT NOT NULL DEFAULT 0,
    embedded          BIGINT NOT NULL DEFAULT 0,
    skipped_unchanged BIGINT NOT NULL DEFAULT 0,
    deduplicated      BIGINT NOT NULL DEFAULT 0,
    deleted           BIGINT NOT NULL DEFAULT 0,
    failed            BIGINT NOT NULL DEFAULT 0,
    timings           JSONB NOT NULL DEFAULT '{}'::jsonb,
    error             TEXT
);
