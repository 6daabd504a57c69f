-- Continuous sync: a product whose write keeps failing (a constraint or trigger on the
-- embeddings table, a statement timeout, a value the writer cannot store) is retried on
-- its own with backoff, then set aside here, so the queue behind it keeps flowing.
-- `prodsearch watch retry` (or any change to the product) queues it again.
CREATE TABLE IF NOT EXISTS analytics_features.embedding_failed_items (
    product_id      BIGINT PRIMARY KEY,
    tries           INTEGER NOT NULL DEFAULT 0,
    error           TEXT NOT NULL,
    first_failed_at TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp(),
    last_failed_at  TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp(),
    retry_at        TIMESTAMPTZ,        -- queued again at this time (NULL: not scheduled)
    set_aside       BOOLEAN NOT NULL DEFAULT false  -- out of tries: only a retry or a change
);
