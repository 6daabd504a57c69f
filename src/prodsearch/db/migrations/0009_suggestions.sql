-- Search-as-you-type (GET /suggest): query completions built from the catalog by
-- `embed` (rebuilt) and `watch` (new values added), one row per phrase.
CREATE EXTENSION IF NOT EXISTS pg_trgm;

CREATE TABLE IF NOT EXISTS analytics_features.search_suggestions (
    folded   TEXT PRIMARY KEY,    -- lower case, no diacritics: what a prefix is matched on
    phrase   TEXT NOT NULL,       -- as shown ("Klocki hamulcowe Bosch")
    kind     TEXT NOT NULL,       -- type | brand | vehicle | type_brand | type_vehicle
    lang     TEXT,                -- en | pl | NULL (a name: brand, vehicle)
    products INTEGER NOT NULL     -- live products the completion finds
);

CREATE INDEX IF NOT EXISTS idx_search_suggestions_trgm
    ON analytics_features.search_suggestions USING gin (folded gin_trgm_ops);
