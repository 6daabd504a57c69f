"""``prodsearch bench polish``: how should a Polish query reach products by meaning?

Compares, on the catalog in the database, by graded relevance of the judged queries
(semantic leg only, exact brute force in NumPy so the index plays no part):

* ``english only`` — the stored English vectors, the query as typed;
* ``query map`` — the stored English vectors, the query through the learned
  Polish→English map (what prodsearch does);
* ``polish vectors`` — a second vector per product from its Polish text (name +
  description), the query scored against both vectors (best of the two);
* ``map + polish vectors`` — both.

Each with and without the synonym expansion of the query text. It also reports the cost
of each: extra vectors to embed (and the time), extra bytes per product, and the query-time
work. Encoding the Polish texts takes minutes on a 20k catalog: run it on a demo-sized
catalog, not the full one.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import psycopg
from pgvector.psycopg import register_vector

from prodsearch.bench import relevance as rel
from prodsearch.catalog.source import Source, load_source
from prodsearch.catalog.text import prepare_text
from prodsearch.config import Settings
from prodsearch.db import connect, database_url, migrate
from prodsearch.embedding import modes, querymap, store
from prodsearch.embedding.encoder import encoder_for
from prodsearch.errors import ProdsearchError
from prodsearch.search.lexquery import analyze
from prodsearch.search.synonyms import load as load_synonyms


def _catalog(
    conn: psycopg.Connection[Any], source: Source
) -> tuple[np.ndarray, np.ndarray, list[dict[str, Any]]]:
    """Every embedded product's id, English vector and Polish texts (from the configured
    source, which must have ``polish_name`` / ``polish_description`` columns)."""
    missing = [c for c in ("polish_name", "polish_description") if c not in source.columns]
    if missing:
        raise ProdsearchError(
            f"bench polish needs Polish text columns; {source.name} has no {', '.join(missing)}"
        )
    register_vector(conn)
    rows = store.vectors_with_columns(conn, source, ("polish_name", "polish_description"))
    ids = np.array([r[0] for r in rows])
    english = np.vstack([np.asarray(r[1], dtype=np.float32) for r in rows])
    polish = [{"polish_name": r[2], "polish_description": r[3]} for r in rows]
    return ids, english, polish


@dataclass(frozen=True)
class PolishRow:
    approach: str
    synonyms: bool  # query expansion on
    lang: str
    figures: rel.Figures


@dataclass(frozen=True)
class ApproachCost:
    extra_bytes_per_product: int
    extra_embed: str
    query: str


@dataclass
class PolishBench:
    products: int
    polish_texts: int
    polish_embed_s: float
    rows: list[PolishRow] = field(default_factory=list)
    cost: dict[str, ApproachCost] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["rows"] = [
            {"approach": r.approach, "synonyms": r.synonyms, "lang": r.lang, **r.figures.as_dict()}
            for r in self.rows
        ]
        return out


def run(settings: Settings, progress: Callable[[str], None] = lambda _m: None) -> PolishBench:
    synonyms = load_synonyms(settings.synonyms)
    with connect(database_url(settings)) as conn:
        migrate(conn)
        enc = encoder_for(settings, modes.in_force(conn, settings).mode)
        qmap = querymap.load(conn, enc.model_name, enc.mode)
        if qmap is None:
            raise ProdsearchError("no query map stored: run `prodsearch embed` first")
        ids, english, polish_rows = _catalog(conn, load_source(conn, settings))
        fields = ["polish_name", "polish_description"]
        texts = [prepare_text(r, fields, settings.max_chars) for r in polish_rows]
        has = [i for i, t in enumerate(texts) if t]
        progress(f"encoding {len(has):,} Polish product texts (the second-vector approach)")
        t0 = time.perf_counter()
        pl_vecs = np.full_like(english, np.nan)
        pl_vecs[has] = enc.encode([texts[i] for i in has])
        pl_embed_s = time.perf_counter() - t0
        source_rows = load_source(conn, settings)
        queries = [q for q in rel.load_queries() if q.lang in ("en", "pl")]
        ideals = {q: rel.ideal_dcg(conn, source_rows, q) for q in queries}
        attrs = rel.product_attributes(conn, source_rows, ids.tolist())
    results = PolishBench(len(ids), len(has), round(pl_embed_s, 1))
    for expand in (False, True):
        rows = _score_approaches(
            enc, qmap, synonyms, queries, expand, english, pl_vecs, ids, attrs, ideals
        )
        results.rows += [PolishRow(name, expand, lang, m) for name, lang, m in rows]
        progress(f"synonyms {'on' if expand else 'off'}: done")
    dim = english.shape[1]
    results.cost = {
        "english only": ApproachCost(0, "none", "1 encode"),
        "query map": ApproachCost(
            0,
            f"{qmap.pairs * 2:,} names once (fit {qmap.details})",
            "1 encode + one 384x384 product (~20 us)",
        ),
        "polish vectors": ApproachCost(
            4 * dim + 8,
            f"{len(has):,} texts, {pl_embed_s:.0f} s",
            "1 encode, 2 nearest-neighbour searches, a second index",
        ),
        "map + polish vectors": ApproachCost(4 * dim + 8, "both", "both"),
    }
    return results


APPROACHES = ("english only", "query map", "polish vectors", "map + polish vectors")


def _score_approaches(
    enc: Any,
    qmap: Any,
    synonyms: Any,
    queries: list[Any],
    expand: bool,
    english: np.ndarray,
    pl_vecs: np.ndarray,
    ids: np.ndarray,
    attrs: dict[int, Any],
    ideals: dict[Any, float],
) -> list[tuple[str, str, rel.Figures]]:
    """(approach, language, figures) for every approach, exact search over ``english``
    (and ``pl_vecs``, the Polish texts' vectors, where an approach uses them)."""
    texts = [
        analyze(q.query, synonyms).semantic_text(q.query) if expand else q.query for q in queries
    ]
    raw = enc.encode(texts)
    mapped = qmap.apply(raw)
    out = []
    for name in APPROACHES:
        scores = (mapped if "map" in name else raw) @ english.T
        if "polish" in name:
            scores = np.maximum(scores, np.nan_to_num(raw @ pl_vecs.T, nan=-1.0))
        top = np.argsort(-scores, axis=1)[:, : rel.K]
        per = [
            rel.score(q, name, ids[t].tolist(), attrs, ideals[q])
            for q, t in zip(queries, top, strict=True)
        ]
        out += [(name, lang, m) for (_m, lang), m in rel.summarise(per, ("mode", "lang")).items()]
    return out
