"""Padded batch widths (issue #23): OpenVINO runs the model with dynamic shapes, and every
new (batch, width) pair costs shape inference and kernel selection. Rounding each batch's
width up to a multiple of 8 / 16 / 32 tokens leaves far fewer distinct shapes for a few
percent more (masked) tokens.

    python docs/experiments/shape_buckets.py [MODE]

The same 4,096 ``bench encode`` texts (the catalog's length distribution at the
configured token cap) and 4,000 product names (the query map's texts), encoded in turn
at each multiple, three rounds, median texts/s; cosine of each against multiple 1.
"""

from __future__ import annotations

import statistics
import sys
import time

import numpy as np

from prodsearch.bench.encode import product_texts
from prodsearch.catalog import generate
from prodsearch.config import Settings
from prodsearch.embedding.encoder import encoder_for

MULTIPLES = (1, 8, 16, 32)


def names(n: int) -> list[str]:
    name, polish = generate.COLUMNS.index("name"), generate.COLUMNS.index("polish_name")
    rows = list(generate.rows(n, seed=7))
    return [r[name] for r in rows] + [r[polish] or r[name] for r in rows]


def main() -> None:
    settings = Settings()
    mode = sys.argv[1] if len(sys.argv) > 1 else settings.mode
    enc = encoder_for(settings, mode)
    for label, texts in {"catalog": product_texts(4096), "names": names(2000)}.items():
        ids = enc.tokenize(texts)
        enc.encode_ids(ids[:256])  # warm-up
        rates: dict[int, list[float]] = {m: [] for m in MULTIPLES}
        vectors: dict[int, np.ndarray] = {}
        shapes: dict[int, int] = {}
        for _ in range(3):
            for m in MULTIPLES:
                enc.width_multiple = m
                before = dict(enc.stats)
                t0 = time.perf_counter()
                vectors[m] = enc.encode_ids(ids)
                rates[m].append(len(ids) / (time.perf_counter() - t0))
                shapes[m] = enc.stats["padded"] - before["padded"]
        base = vectors[1]
        for m in MULTIPLES:
            cos = (vectors[m] * base).sum(axis=1)
            print(
                f"{mode} {label} multiple {m}: {statistics.median(rates[m]):.0f} texts/s "
                f"(rounds {' '.join(f'{r:.0f}' for r in rates[m])}), padded tokens "
                f"{shapes[m]:,}, cosine min {cos.min():.6f}"
            )


if __name__ == "__main__":
    main()
