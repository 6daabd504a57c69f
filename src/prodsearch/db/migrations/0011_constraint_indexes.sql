-- Understood constraints (search/constrained.py) filter the demo catalog by vehicle and
-- engine besides brand, category and price: without an index, a strict search scanned
-- the whole table for them (at 278k products, constrained semantic p95 128 -> 50 ms with
-- these; docs/BENCHMARKS.md). For your own table, index the columns that
-- PRODSEARCH_VEHICLE_COLUMN / PRODSEARCH_ENGINE_COLUMN name.
CREATE INDEX IF NOT EXISTS idx_dim_product_vehicle ON staging_marts.dim_product (vehicle);
CREATE INDEX IF NOT EXISTS idx_dim_product_engine ON staging_marts.dim_product (engine);
