"""Encode rate of the same texts cut at several token caps (issue #23).

    python docs/experiments/token_cap.py [TEXTS] [CAPS]

``TEXTS`` distinct catalog-generator texts (the ``bench encode`` sample), tokenised once
at 256; a cap ``c`` keeps the first ``c - 1`` tokens and the final [SEP], which is what
``PRODSEARCH_MAX_TOKENS=c`` gives. ``CAPS``: comma-separated, default ``256,128,96``.
Each cap encoded three times, alternately, in the configured mode (``PRODSEARCH_MODE``).
"""

from __future__ import annotations

import sys
import time

import numpy as np

from prodsearch.bench.encode import product_texts
from prodsearch.config import Settings
from prodsearch.embedding.encoder import load_encoder
from prodsearch.embedding.modes import without_record


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 4096
    caps = [int(c) for c in (sys.argv[2] if len(sys.argv) > 2 else "256,128,96").split(",")]
    settings = Settings()
    models = settings.models_dir
    mode = without_record(settings).mode
    enc = load_encoder(mode, settings.model, models_dir=models, max_tokens=256)
    ids = enc.tokenize(product_texts(n))
    lengths = np.array([len(x) for x in ids])
    over = ", ".join(f"over {c}: {(lengths > c).mean():.1%}" for c in caps)
    print(
        f"{len(ids)} texts: tokens mean {lengths.mean():.1f}, p50 {np.median(lengths):.0f}; {over}"
    )
    cut = {c: [x if len(x) <= c else x[: c - 1] + x[-1:] for x in ids] for c in caps}
    enc.encode_ids(ids[:256])  # warm-up
    rates: dict[int, list[int]] = {c: [] for c in caps}
    for _ in range(3):
        for c in caps:
            t0 = time.perf_counter()
            enc.encode_ids(cut[c])
            rates[c].append(round(len(ids) / (time.perf_counter() - t0)))
    for c in caps:
        print(f"cap {c}: {rates[c]} texts/s (median {sorted(rates[c])[1]})")


if __name__ == "__main__":
    main()
