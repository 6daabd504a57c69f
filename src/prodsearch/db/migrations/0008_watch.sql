-- Continuous sync (prodsearch watch). The queue of changed ids and the capture trigger
-- are created by `prodsearch watch install` and removed by `uninstall` (watch/sql.py);
-- the workers' counters live here for good.

-- One row per running (or last run) worker: what it has done, for /metrics and status.
-- lag_buckets[i] counts changes embedded within LAG_BUCKETS[i] seconds of their capture
-- (cumulative, as a Prometheus histogram's buckets), plus one for +Inf.
CREATE TABLE IF NOT EXISTS analytics_features.watch_workers (
    worker_id TEXT PRIMARY KEY,           -- host:pid
    started_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    heartbeat_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    batches BIGINT NOT NULL DEFAULT 0,
    embedded BIGINT NOT NULL DEFAULT 0,   -- rows written with a new vector
    refreshed BIGINT NOT NULL DEFAULT 0,  -- rows whose text was unchanged (hashes refreshed)
    deleted BIGINT NOT NULL DEFAULT 0,    -- embeddings removed
    errors BIGINT NOT NULL DEFAULT 0,     -- batches that failed (and were retried)
    lag_buckets BIGINT[] NOT NULL DEFAULT '{}',
    lag_sum DOUBLE PRECISION NOT NULL DEFAULT 0,
    lag_count BIGINT NOT NULL DEFAULT 0,
    busy_s DOUBLE PRECISION NOT NULL DEFAULT 0,
    reconciled_at TIMESTAMPTZ             -- the last reconciliation's end
);
