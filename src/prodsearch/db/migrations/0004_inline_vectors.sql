-- Keep each product's vector in its heap row instead of the TOAST table.
-- pgvector's types default to EXTERNAL storage; a row here (1.5 KB vector + a ~0.8 KB
-- tsvector + hashes) is over the 2 KB toast threshold, so every vector was moved out of
-- line and each exact-distance computation (filtered search, similar-product lookup,
-- index builds, verify) paid an extra TOAST index lookup. MAIN keeps the vector inline
-- (moved out only as a last resort), and a 4 KB tuple target leaves typical rows whole.
-- Affects rows written from now on; to move existing rows back inline run
-- `prodsearch db psql -c "VACUUM FULL analytics_features.product_embeddings"`
-- (it rewrites the table and rebuilds its indexes; see docs/OPERATIONS.md).
ALTER TABLE analytics_features.product_embeddings ALTER COLUMN embedding SET STORAGE MAIN;
ALTER TABLE analytics_features.product_embeddings SET (toast_tuple_target = 4080);
