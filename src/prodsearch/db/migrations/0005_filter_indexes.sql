-- Covering indexes for filtered search on the demo catalog table.
-- A selective filter is answered exactly: find the matching products, then score each
-- one's vector. With every filter column and the product id in the index, finding them is
-- an index-only scan (no visit to the catalog heap), which halves the cost per match.
-- For your own catalog table, create the same shape on its filter columns (see
-- docs/OPERATIONS.md, "Filtered search on your own table").
DROP INDEX IF EXISTS staging_marts.idx_dim_product_category;
DROP INDEX IF EXISTS staging_marts.idx_dim_product_brand;
CREATE INDEX IF NOT EXISTS idx_dim_product_category_filters ON staging_marts.dim_product
    (category) INCLUDE (product_id, brand, price, in_stock, is_deleted);
CREATE INDEX IF NOT EXISTS idx_dim_product_brand_filters ON staging_marts.dim_product
    (brand) INCLUDE (product_id, category, price, in_stock, is_deleted);
CREATE INDEX IF NOT EXISTS idx_dim_product_price_filters ON staging_marts.dim_product
    (price) INCLUDE (product_id, category, brand, in_stock, is_deleted);
