"""``prodsearch verify``: checks that fail loudly, each named.

- **count parity** — every eligible product has an embedding and no embedding is orphaned;
- **hashes** — on a sample, the stored content hash equals the hash of today's text;
- **self-consistency** — on a sample, stored vectors vs a fresh encode of the same text
  in the stored mode (mean cosine ≥ 0.999 exact, ≥ 0.995 bf16, ≥ 0.98 int8: int8
  activation scales depend on the batch a text was encoded in);
- **index recall** — HNSW top-10 vs exact search, the names of 50 live products as
  queries (tie-aware, :mod:`prodsearch.search.recall`; ≥ 0.95).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import psycopg
from pgvector.psycopg import register_vector

from prodsearch.catalog import sql as catalog_sql
from prodsearch.catalog.source import Source
from prodsearch.catalog.text import content_hash, prepare_text
from prodsearch.config import Settings
from prodsearch.db import hnsw, names
from prodsearch.embedding import store
from prodsearch.embedding.encoder import encoder_for
from prodsearch.ops.status import freshness
from prodsearch.search import queries, recall

COSINE_MIN = {"exact": 0.999, "bf16": 0.995, "int8": 0.98, "int8-static": 0.98}
RECALL_MIN = 0.95


@dataclass
class Check:
    name: str
    ok: bool
    detail: str
    value: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"check": self.name, "ok": self.ok, "detail": self.detail, "value": self.value}


def run(
    conn: psycopg.Connection[Any], source: Source, settings: Settings, sample: int = 200
) -> list[Check]:
    register_vector(conn)
    checks = [_count_parity(conn, source, settings), _integrity(conn)]
    rows = store.sample_rows(conn, source, sample)
    if not rows:
        checks.append(Check("self-consistency", False, "no embeddings to check"))
        return checks
    texts = [
        prepare_text(
            dict(zip(source.text_columns, r[5:], strict=True)),
            source.text_columns,
            settings.max_chars,
        )
        for r in rows
    ]
    encoder = encoder_for(settings, rows[0][4])
    cap = encoder.hash_cap
    bad_hash = sum(
        content_hash(t, r[3], r[4], cap) != r[2] for t, r in zip(texts, rows, strict=True)
    )
    checks.append(
        Check(
            "hashes",
            bad_hash == 0,
            f"{bad_hash} of {len(rows)} sampled rows have a stale content hash",
        )
    )
    checks.append(_self_consistency(encoder, rows, texts))
    checks.append(_recall(conn, source, encoder, settings))
    return checks


def _count_parity(conn: psycopg.Connection[Any], source: Source, settings: Settings) -> Check:
    eligible = store.count_eligible(conn, source)
    fresh = freshness(conn, source, settings)
    return Check(
        "count parity",
        fresh.missing == 0 and fresh.orphans == 0,
        f"{eligible:,} eligible products, {store.count_embeddings(conn):,} "
        f"embeddings, {fresh.missing:,} missing, {fresh.orphans:,} orphaned",
    )


def _integrity(conn: psycopg.Connection[Any]) -> Check:
    altered = store.count_altered(conn)
    return Check(
        "integrity",
        altered == 0,
        f"{altered:,} stored vectors differ from the checksum written with them "
        "(altered outside prodsearch embed; rerun with --full-refresh)",
    )


def _self_consistency(encoder: Any, rows: list[Any], texts: list[str]) -> Check:
    mode = encoder.mode
    fresh_vecs = encoder.encode([t or "-" for t in texts])
    stored = np.stack([np.asarray(_array(r[1]), dtype=np.float32) for r in rows])
    cos = np.sum(fresh_vecs * stored, axis=1) / np.linalg.norm(stored, axis=1)
    threshold = COSINE_MIN.get(mode, 0.999)
    row_floor = threshold - 0.05  # one vector far off fails even when the mean holds
    return Check(
        "self-consistency",
        float(cos.mean()) >= threshold and float(cos.min()) >= row_floor,
        f"mean cosine {cos.mean():.5f} (min {cos.min():.5f}) between {len(rows)} stored "
        f"vectors and a fresh {mode} encode; needs mean ≥ {threshold}, "
        f"each ≥ {row_floor:.3f}",
        round(float(cos.mean()), 5),
    )


def _array(value: Any) -> Any:
    return value.to_numpy() if hasattr(value, "to_numpy") else value


def _recall(
    conn: psycopg.Connection[Any], source: Source, encoder: Any, settings: Settings
) -> Check:
    """Tie-aware recall@10 of the index path against brute force, for the names of 50 live
    products (spread by a hash of their ids) used as queries."""
    idx_type = hnsw.current_type(conn)
    if idx_type is None:
        return Check("index recall", False, f"{names.INDEX_NAME} does not exist")
    texts = catalog_sql.sample_names(conn, source, 50)
    order = hnsw.order_expression(idx_type, encoder.dim)
    tally = recall.RecallTally()
    for vec in encoder.encode(texts) if texts else []:
        exact = recall.exact_top_k(conn, vec, 10, source)
        with conn.transaction():
            ids = queries.approximate_neighbours(conn, source, vec, order, settings.ef_search)
        found = recall.exact_distances(conn, vec, ids)
        tally.add("names", [found[i] for i in ids], exact[-1][1])
    value = tally.mean()
    return Check(
        "index recall",
        value >= RECALL_MIN,
        f"recall@10 {value:.4f} of {names.INDEX_NAME} vs exact search over "
        f"{tally.queries} product-name queries (ef_search {settings.ef_search}); "
        f"needs ≥ {RECALL_MIN}",
        round(value, 4),
    )
