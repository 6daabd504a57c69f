-- Integrity: a checksum of each stored vector, written with it, so `prodsearch verify`
-- can detect any altered vector across the whole table without re-encoding.
ALTER TABLE analytics_features.product_embeddings
    ADD COLUMN IF NOT EXISTS embedding_md5 TEXT;
