-- One catalog, one encoder mode: the mode its vectors are embedded in, fixed by the first
-- embed (or worker) and used by every later process whatever its own default, so that an
-- `embed` on one machine and a worker on another never mix modes. An explicit
-- `embed --mode` (or PRODSEARCH_MODE) of another mode re-embeds the catalog and records
-- the new one. One row at most.
CREATE TABLE IF NOT EXISTS analytics_features.encoder_mode (
    singleton   BOOLEAN PRIMARY KEY DEFAULT true CHECK (singleton),
    mode        TEXT NOT NULL,
    model_name  TEXT NOT NULL,
    reason      TEXT NOT NULL,          -- why this mode: one sentence for status and /health
    recorded_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- a catalog embedded before modes were recorded keeps the mode of its stored vectors
INSERT INTO analytics_features.encoder_mode (mode, model_name, reason)
SELECT mode, model_name, 'the mode of the vectors stored before modes were recorded'
FROM analytics_features.product_embeddings
GROUP BY mode, model_name
ORDER BY count(*) DESC
LIMIT 1
ON CONFLICT DO NOTHING;
