"""``prodsearch bench encode``: encoder throughput, fidelity and latency vs the baseline.

Baseline: sentence-transformers fp32, batch 32 — the original platform's encoder — on
the same texts in the same run, cut at the same token cap (``PRODSEARCH_MAX_TOKENS``). Rounds
interleave the baseline and every mode, so machine noise hits all alike; medians are
reported.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from prodsearch.bench.baseline import sentence_transformer
from prodsearch.bench.load import percentile
from prodsearch.bench.workload import benchmark_queries
from prodsearch.catalog.generate import COLUMNS, rows
from prodsearch.catalog.text import prepare_text
from prodsearch.config import Settings, encoder_mode
from prodsearch.embedding.encoder import MODES, encoder_for
from prodsearch.search import recall


@dataclass
class MethodResult:
    name: str
    rates: list[float] = field(default_factory=list)
    cos_min: float | None = None
    cos_mean: float | None = None
    latency_ms: list[float] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return statistics.median(self.rates)


@dataclass(frozen=True)
class EncodeMethod:
    method: str
    texts_per_s: float  # median over the rounds
    all_rates: list[float]
    ratio: float  # against the baseline (sentence-transformers fp32, batch 32)
    cos_min: float  # cosine to the baseline's vectors
    cos_mean: float
    query_p50_ms: float  # one query at a time
    query_p95_ms: float


@dataclass(frozen=True)
class ModeRecall:
    recall_at_10: float  # tie-aware, against exact mode's neighbours
    min_query_recall: float


@dataclass
class EncodeBench:
    texts: int
    mean_words: float
    rounds: int
    queries: int
    methods: list[EncodeMethod]
    recall: NeighbourAgreement | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class NeighbourAgreement:
    products: int
    queries: int
    modes: dict[str, ModeRecall]


def product_texts(n: int, seed: int = 2024) -> list[str]:
    """``n`` distinct prepared product texts (duplicates removed, so no method gets free work)."""
    unique = dict.fromkeys(
        prepare_text(dict(zip(COLUMNS, r, strict=True))) for r in rows(int(n * 1.1) + 10, seed)
    )
    return list(unique)[:n]


def _baseline(max_tokens: int) -> Callable[[Sequence[str]], np.ndarray]:
    """sentence-transformers fp32, batch 32, cut at the same token cap as the modes (so
    rates and cosines compare the same work)."""
    model = sentence_transformer()
    model.max_seq_length = min(model.max_seq_length, max_tokens)

    def encode(texts: Sequence[str]) -> np.ndarray:
        return np.asarray(model.encode(list(texts), batch_size=32, normalize_embeddings=True))

    return encode


def run(
    settings: Settings,
    n_texts: int = 2048,
    modes: Sequence[str] = MODES,
    rounds: int = 3,
    n_queries: int = 200,
    progress: Callable[[str], None] = lambda _msg: None,
) -> EncodeBench:
    texts = product_texts(n_texts)
    queries = benchmark_queries()[:n_queries]
    encoders: dict[str, Callable[[Sequence[str]], np.ndarray]] = {
        "baseline": _baseline(settings.max_tokens)
    }
    for mode in modes:
        encoders[mode] = encoder_for(settings, encoder_mode(mode)).encode
    results = {name: MethodResult(name) for name in encoders}
    vectors: dict[str, np.ndarray] = {}
    for encode in encoders.values():  # warm-up: first calls allocate
        encode(texts[:64])
    for rnd in range(rounds):
        for name, encode in encoders.items():
            started = time.perf_counter()
            vectors[name] = encode(texts)
            results[name].rates.append(len(texts) / (time.perf_counter() - started))
            progress(f"round {rnd + 1}/{rounds} {name}: {results[name].rates[-1]:.1f} texts/s")
    for name, encode in encoders.items():
        cos = np.sum(vectors[name] * vectors["baseline"], axis=1)
        results[name].cos_min, results[name].cos_mean = float(cos.min()), float(cos.mean())
        for q in queries:
            started = time.perf_counter()
            encode([q])
            results[name].latency_ms.append((time.perf_counter() - started) * 1000)
    base = results["baseline"].rate
    tokens = [len(t.split()) for t in texts]
    methods = [
        EncodeMethod(
            method=r.name,
            texts_per_s=round(r.rate, 1),
            all_rates=[round(x, 1) for x in r.rates],
            ratio=round(r.rate / base, 2),
            cos_min=round(r.cos_min or 0, 5),
            cos_mean=round(r.cos_mean or 0, 5),
            query_p50_ms=percentile(r.latency_ms, 50),
            query_p95_ms=percentile(r.latency_ms, 95),
        )
        for r in results.values()
    ]
    return EncodeBench(len(texts), round(float(np.mean(tokens)), 1), rounds, len(queries), methods)


def recall_at_10(
    settings: Settings,
    n_products: int = 10_000,
    modes: Sequence[str] = ("bf16", "int8"),
    n_queries: int | None = None,
    progress: Callable[[str], None] = lambda _msg: None,
) -> NeighbourAgreement:
    """Neighbour agreement: each mode's top-10 products per query against exact mode's,
    tie-aware (:func:`prodsearch.search.recall.tie_aware_recall` on exact-mode
    distances: duplicate texts tie)."""
    texts = product_texts(n_products, seed=10_000)
    queries = benchmark_queries()[:n_queries]
    exact = encoder_for(settings, "exact")
    progress(f"exact: encoding {len(texts):,} products")
    ref_docs, ref_q = exact.encode(texts), exact.encode(queries)
    ref_dist = 1.0 - ref_q @ ref_docs.T  # exact-mode distances, query x product
    kth = np.sort(ref_dist, axis=1)[:, 9]
    out = NeighbourAgreement(len(texts), len(queries), {})
    for mode in modes:
        enc = encoder_for(settings, encoder_mode(mode))
        progress(f"{mode}: encoding {len(texts):,} products")
        top = np.argsort(-(enc.encode(queries) @ enc.encode(texts).T), axis=1)[:, :10]
        hits = [
            recall.tie_aware_recall(ref_dist[i, top[i]].tolist(), float(kth[i]))
            for i in range(len(queries))
        ]
        out.modes[mode] = ModeRecall(round(float(np.mean(hits)), 4), round(float(np.min(hits)), 2))
    return out
