"""Texts per encoder batch for short texts (issue #23): the query map's product names and
the catalog's own texts, encoded with batches of at most 64 / 128 / 256 texts under the
same token budget.

    python docs/experiments/batch_size.py [MODE ...]

The names are 6,000 English and 6,000 Polish catalog-generator product names, the texts
the query-map fit encodes; the catalog texts are 4,096 ``bench encode`` texts at the
configured token cap. Each set is encoded twice per batch size, alternately; the median
rate is printed.
"""

from __future__ import annotations

import statistics
import sys
import time

import numpy as np

from prodsearch.bench.encode import product_texts
from prodsearch.catalog import generate
from prodsearch.config import Settings
from prodsearch.embedding.encoder import load_encoder
from prodsearch.embedding.modes import without_record

SIZES = (64, 128, 256)


def names(n: int) -> list[str]:
    name, polish = generate.COLUMNS.index("name"), generate.COLUMNS.index("polish_name")
    rows = list(generate.rows(n, seed=42))
    return [r[name] for r in rows] + [r[polish] or r[name] for r in rows]


def main() -> None:
    settings = Settings()
    modes = sys.argv[1:] or [without_record(settings).mode]
    sets = {"names": names(6000), "catalog": product_texts(4096)}
    for mode in modes:
        encoders = {
            size: load_encoder(
                mode,
                settings.model,
                models_dir=settings.models_dir,
                max_batch=size,
                max_tokens=settings.max_tokens,
            )
            for size in SIZES
        }
        for label, texts in sets.items():
            ids = encoders[64].tokenize(texts)
            lengths = np.array([len(x) for x in ids])
            rates: dict[int, list[float]] = {size: [] for size in SIZES}
            encoders[64].encode_ids(ids[:512])  # warm-up
            for _ in range(2):
                for size, enc in encoders.items():
                    t0 = time.perf_counter()
                    enc.encode_ids(ids)
                    rates[size].append(len(ids) / (time.perf_counter() - t0))
            summary = ", ".join(
                f"max {size}: {statistics.median(r):.0f}/s" for size, r in rates.items()
            )
            print(f"{mode} {label} ({len(ids)} texts, mean {lengths.mean():.0f} tokens): {summary}")


if __name__ == "__main__":
    main()
