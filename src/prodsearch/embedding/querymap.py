"""A learned linear map that brings Polish queries into the English model's space.

all-MiniLM-L6-v2 is an English model: a Polish query ("klocki hamulcowe") and the English
name of the product it means ("Brake Pads") are far apart (cosine ≈ 0.05). The catalog
itself says which texts mean the same thing: most products carry a Polish name beside
the English one. We learn ``W`` (d × d) so that ``embed(polish_name) @ W ≈
embed(name)`` *and* ``embed(name) @ W ≈ embed(name)`` — a ridge regression pulled
towards the identity, so English queries pass through almost unchanged and no language
detection is needed. At query time the query vector is multiplied by ``W`` and
re-normalised: one 384 × 384 product, ~20 µs.

The map is fitted by ``prodsearch embed`` when the catalog has a Polish name column and
no map exists for the model and mode (or ``--refit-map``), and stored in
``analytics_features.query_maps``; the API loads it at start-up.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import psycopg

from prodsearch.catalog import sql as catalog_sql
from prodsearch.catalog.source import Source
from prodsearch.catalog.text import clean_text
from prodsearch.config import EncoderMode
from prodsearch.embedding import querymap_sql
from prodsearch.embedding.encoder import Encoder
from prodsearch.jsonvalue import JsonObject

# name pairs the map is fitted on: more pairs cost fit time (both names of each pair are
# encoded) without better relevance (docs/BENCHMARKS.md, "Session 10: fewer name pairs,
# text indexes built after the load, a smaller small graph")
DEFAULT_PAIRS = 2000
RIDGE = 1.0  # pull towards the identity, relative to the mean squared norm per pair


@dataclass
class QueryMap:
    matrix: np.ndarray  # float32 (dim, dim)
    pairs: int
    details: JsonObject  # the fit's figures

    def apply(self, vectors: np.ndarray) -> np.ndarray:
        out = np.asarray(vectors, dtype=np.float32) @ self.matrix
        norms = np.linalg.norm(out, axis=-1, keepdims=True)
        return np.asarray(out / np.maximum(norms, 1e-12), dtype=np.float32)


def pair_columns(source: Source) -> tuple[str, str] | None:
    """(English name column, Polish name column) when the source has both."""
    english = "name" if "name" in source.columns else source.text_columns[0]
    polish = "polish_name" if "polish_name" in source.columns else None
    return (english, polish) if polish else None


def training_pairs(
    conn: psycopg.Connection[Any], source: Source, limit: int = DEFAULT_PAIRS
) -> list[tuple[str, str]]:
    """A deterministic sample of (English, Polish) name pairs, distinct Polish names."""
    cols = pair_columns(source)
    if cols is None:
        return []
    rows = catalog_sql.name_pairs(conn, source, cols[0], cols[1], limit)
    pairs = [(clean_text(a), clean_text(b)) for a, b in rows]
    return [(a, b) for a, b in pairs if a and b]


def fit(encoder: Encoder, pairs: list[tuple[str, str]], ridge: float = RIDGE) -> QueryMap:
    """Ridge regression towards the identity over Polish→English and English→English pairs."""
    started = time.perf_counter()
    english = encoder.encode([a for a, _ in pairs]).astype(np.float64)
    polish = encoder.encode([b for _, b in pairs]).astype(np.float64)
    x = np.vstack([polish, english])
    y = np.vstack([english, english])
    dim = x.shape[1]
    lam = ridge * len(x) / dim
    gram = x.T @ x + lam * np.eye(dim)
    matrix = np.linalg.solve(gram, x.T @ y + lam * np.eye(dim)).astype(np.float32)
    qmap = QueryMap(matrix, len(pairs), {})
    before = float(np.mean(np.sum(polish * english, axis=1)))
    after = float(np.mean(np.sum(qmap.apply(polish) * english, axis=1)))
    keep = float(np.mean(np.sum(qmap.apply(english) * english, axis=1)))
    qmap.details = {
        "ridge": ridge,
        "fit_s": round(time.perf_counter() - started, 3),
        "cosine_pl_en_before": round(before, 4),
        "cosine_pl_en_after": round(after, 4),
        "cosine_en_en_after": round(keep, 4),
    }
    return qmap


def save(conn: psycopg.Connection[Any], model: str, mode: EncoderMode, qmap: QueryMap) -> None:
    blob = qmap.matrix.astype("<f4").tobytes()
    querymap_sql.save_query_map(
        conn, model, mode, qmap.matrix.shape[0], blob, qmap.pairs, qmap.details
    )


def load(conn: psycopg.Connection[Any], model: str, mode: EncoderMode) -> QueryMap | None:
    row = querymap_sql.load_query_map(conn, model, mode)
    if row is None:
        return None
    matrix = np.frombuffer(row.matrix, dtype="<f4").reshape(row.dim, row.dim)
    return QueryMap(matrix.astype(np.float32), row.pairs, row.details)


def refresh(
    conn: psycopg.Connection[Any], source: Source, encoder: Encoder, force: bool = False
) -> tuple[QueryMap | None, bool]:
    """Fit and store the map when the source has Polish names and none is stored (or
    ``force``). Returns the stored map (None when the catalog has no pairs) and whether
    it was fitted now. The caller commits."""
    if not force:
        existing = load(conn, encoder.model_name, encoder.mode)
        if existing is not None:
            return existing, False
    pairs = training_pairs(conn, source)
    if len(pairs) < 50:
        return None, False
    qmap = fit(encoder, pairs)
    save(conn, encoder.model_name, encoder.mode, qmap)
    return qmap, True
