-- The step a run is in (plan, delete, embed, index, search support, done): what
-- `prodsearch status` shows of a running run, and where an interrupted one stopped.
ALTER TABLE analytics_features.embedding_runs
    ADD COLUMN IF NOT EXISTS stage TEXT NOT NULL DEFAULT 'plan';
