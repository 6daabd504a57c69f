"""Encode rate at the model's 256-token limit against a 128-token cap (issue #23).

    python docs/experiments/token_cap.py [TEXTS]

``TEXTS`` distinct catalog-generator texts (the ``bench encode`` sample), tokenised once
at 256; the capped run keeps the first 127 tokens and the final [SEP], which is what
``PRODSEARCH_MAX_TOKENS=128`` gives. Both encoded twice, alternately, in the configured
mode (``PRODSEARCH_MODE``).
"""

from __future__ import annotations

import sys
import time

import numpy as np

from prodsearch.bench.encode import product_texts
from prodsearch.config import Settings
from prodsearch.embedding.encoder import load_encoder


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 4096
    settings = Settings()
    models = settings.models_dir
    enc = load_encoder(settings.mode, settings.model, models_dir=models, max_tokens=256)
    ids = enc.tokenize(product_texts(n))
    lengths = np.array([len(x) for x in ids])
    print(
        f"{len(ids)} texts: tokens mean {lengths.mean():.1f}, p50 {np.median(lengths):.0f}, "
        f"p90 {np.percentile(lengths, 90):.0f}; over 128: {(lengths > 128).mean():.1%}, "
        f"at 256: {(lengths >= 256).mean():.1%}"
    )
    capped = [x if len(x) <= 128 else x[:127] + x[-1:] for x in ids]
    enc.encode_ids(ids[:256])  # warm-up
    for name, data in (("256", ids), ("128", capped), ("256", ids), ("128", capped)):
        t0 = time.perf_counter()
        enc.encode_ids(data)
        print(f"cap {name}: {len(data) / (time.perf_counter() - t0):.0f} texts/s", flush=True)


if __name__ == "__main__":
    main()
