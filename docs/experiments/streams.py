"""OpenVINO bf16: one batch split over all threads (LATENCY) against one single-threaded
stream per core (THROUGHPUT), alone and beside a competing thread (issue #23).

    python docs/experiments/streams.py [TEXTS]

``TEXTS`` catalog-generator texts (the ``bench encode`` sample) at the 128-token cap, in
the encoder's own length-sorted batches (64 texts, 4,096 tokens). The competitor runs
``md5`` over 64 KB buffers (which releases the GIL) 40 % of every 10 ms, standing in for
the pipeline's writer thread and the database backend.
"""

from __future__ import annotations

import hashlib
import sys
import threading
import time
from collections.abc import Callable

import openvino as ov

from prodsearch.bench.encode import product_texts
from prodsearch.config import Settings
from prodsearch.embedding.encoder import load_encoder
from prodsearch.embedding.export import onnx_model
from prodsearch.embedding.model import resolve_model


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 4096
    settings = Settings()
    enc = load_encoder("bf16", settings.model, models_dir=settings.models_dir, max_tokens=128)
    work = [padded for _, padded in enc.padded_batches(enc.tokenize(product_texts(n)))]
    core = ov.Core()
    path = onnx_model(resolve_model(settings.model), "bf16", settings.models_dir)
    model = core.read_model(str(path))
    base = {"INFERENCE_NUM_THREADS": 2, "INFERENCE_PRECISION_HINT": "bf16"}
    latency = core.compile_model(model, "CPU", {**base, "PERFORMANCE_HINT": "LATENCY"})
    streams = core.compile_model(
        model, "CPU", {**base, "PERFORMANCE_HINT": "THROUGHPUT", "NUM_STREAMS": 2}
    )

    def split() -> None:
        request = latency.create_infer_request()
        for ids, mask in work:
            request.infer({"input_ids": ids, "attention_mask": mask})

    def queue() -> None:
        pool = ov.AsyncInferQueue(streams, 2)
        for ids, mask in work:
            pool.start_async({"input_ids": ids, "attention_mask": mask})
        pool.wait_all()

    def two_threads() -> None:
        todo = iter(work)
        lock = threading.Lock()

        def worker() -> None:
            request = streams.create_infer_request()
            while True:
                with lock:
                    item = next(todo, None)
                if item is None:
                    return
                request.infer({"input_ids": item[0], "attention_mask": item[1]})

        threads = [threading.Thread(target=worker) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    stop = threading.Event()

    def competitor(duty: float) -> None:
        data = b"x" * 65536
        while not stop.is_set():
            t0 = time.perf_counter()
            while time.perf_counter() - t0 < 0.01 * duty:
                hashlib.md5(data).digest()
            time.sleep(0.01 * (1 - duty))

    runs: dict[str, Callable[[], None]] = {
        "latency, split": split,
        "streams, queue": queue,
        "streams, 2 threads": two_threads,
    }
    split()
    queue()
    for duty in (0.0, 0.4):
        stop.clear()
        other = threading.Thread(target=competitor, args=(duty,), daemon=True)
        if duty:
            other.start()
        for _ in range(2):
            for name, run in runs.items():
                t0 = time.perf_counter()
                run()
                rate = n / (time.perf_counter() - t0)
                print(f"competitor {duty:.0%}, {name}: {rate:.0f} texts/s", flush=True)
        stop.set()
        if duty:
            other.join()


if __name__ == "__main__":
    main()
