"""Encoder runtimes compared on the catalog's own texts (issue #23).

    python docs/experiments/encoders.py [TEXTS] [ROUNDS]

Texts: ``TEXTS`` distinct prepared product texts of the catalog generator (the
``bench encode`` sample: its length distribution, long tail to the 256-token cap). Every
runtime gets the same length-sorted, token-budget batches (``Encoder.encode_ids``), two
threads, interleaved rounds; texts/s is the median. Fidelity is the cosine of each vector
to the plain fp32 ONNX Runtime export's.

Runtimes: ONNX Runtime fp32 (fused: today's ``exact``), ONNX Runtime dynamic int8 (today's
``int8``), ONNX Runtime static int8 (QDQ, calibrated on catalog texts of another seed),
OpenVINO f32 / bf16, and OpenVINO + NNCF int8 (calibrated on the same texts), with and
without SmoothQuant. Calibration texts never overlap the measured ones.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from prodsearch.bench.encode import product_texts
from prodsearch.bench.load import percentile
from prodsearch.config import Settings
from prodsearch.embedding.encoder import OnnxBackend, encoder_for
from prodsearch.embedding.export import _export_fp32
from prodsearch.embedding.model import resolve_model

THREADS = 2
CALIBRATION = 300


class OvBackend:
    def __init__(self, model: Any, precision: str) -> None:
        import openvino as ov

        config = {
            "INFERENCE_NUM_THREADS": THREADS,
            "INFERENCE_PRECISION_HINT": precision,
            "PERFORMANCE_HINT": "LATENCY",
        }
        self.request = ov.Core().compile_model(model, "CPU", config).create_infer_request()

    def run(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        out = self.request.infer({"input_ids": input_ids, "attention_mask": attention_mask})
        return np.asarray(next(iter(out.values())), dtype=np.float32)

    def run_many(self, batches: list[tuple[np.ndarray, np.ndarray]]) -> list[np.ndarray]:
        return [self.run(ids, mask) for ids, mask in batches]


def batches(enc: Any, ids: list[list[int]]) -> list[tuple[np.ndarray, np.ndarray]]:
    """The padded batches ``encode_ids`` would form (for calibration)."""
    return [padded for _, padded in enc.padded_batches(ids)]


def nncf_int8(plain: Path, calib: list[tuple[np.ndarray, np.ndarray]], smooth: bool) -> Any:
    import nncf
    import openvino as ov

    model = ov.Core().read_model(str(plain))
    advanced = nncf.AdvancedQuantizationParameters(
        smooth_quant_alphas=nncf.AdvancedSmoothQuantParameters(matmul=0.95 if smooth else -1)
    )
    data = nncf.Dataset(calib, lambda b: {"input_ids": b[0], "attention_mask": b[1]})
    return nncf.quantize(
        model,
        data,
        model_type=nncf.ModelType.TRANSFORMER,
        subset_size=len(calib),
        advanced_parameters=advanced,
    )


def ort_static_int8(plain: Path, target: Path, calib: list[tuple[np.ndarray, np.ndarray]]) -> None:
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):  # type: ignore[misc]  # untyped library class
        def __init__(self) -> None:
            self.items = iter(calib)

        def get_next(self) -> dict[str, np.ndarray] | None:
            b = next(self.items, None)
            return None if b is None else {"input_ids": b[0], "attention_mask": b[1]}

    pre = target.with_name("pre.onnx")
    quant_pre_process(str(plain), str(pre), skip_symbolic_shape=True)
    quantize_static(
        str(pre),
        str(target),
        Reader(),
        quant_format=QuantFormat.QDQ,
        per_channel=True,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
        op_types_to_quantize=["MatMul"],
    )


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 2048
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    settings = Settings()
    texts = product_texts(n)
    calib_texts = product_texts(CALIBRATION * 2, seed=777)[-CALIBRATION:]
    exact = encoder_for(settings, "exact", threads=THREADS)
    ids = exact.tokenize(texts)
    calib = batches(exact, exact.tokenize(calib_texts))
    tokens = [len(x) for x in ids]
    mean, p95 = np.mean(tokens), percentile([float(t) for t in tokens], 95)
    print(f"{len(texts)} texts, tokens mean {mean:.1f} p95 {p95:.0f}")
    tmp = Path(tempfile.mkdtemp())
    source = resolve_model(settings.model)
    plain = tmp / "plain.onnx"
    _export_fp32(source, plain, fuse=False)
    backends: dict[str, Any] = {
        "ORT fp32 plain (reference)": OnnxBackend(plain, THREADS),
        "ORT fp32 fused (exact)": exact.backend,
        "ORT dynamic int8 (int8)": encoder_for(settings, "int8", threads=THREADS).backend,
    }
    static = tmp / "static.onnx"
    try:
        ort_static_int8(plain, static, calib)
        backends["ORT static int8 QDQ"] = OnnxBackend(static, THREADS)
    except Exception as exc:  # an experiment reports what failed
        print(f"ORT static int8 failed: {exc}")
    import openvino as ov

    backends["OpenVINO f32"] = OvBackend(ov.Core().read_model(str(plain)), "f32")
    backends["OpenVINO bf16"] = OvBackend(ov.Core().read_model(str(plain)), "bf16")
    for smooth in (False, True):
        name = f"OpenVINO + NNCF int8, SmoothQuant {'on' if smooth else 'off'}"
        backends[name] = OvBackend(nncf_int8(plain, calib, smooth), "f32")
    rates: dict[str, list[float]] = {k: [] for k in backends}
    vectors: dict[str, np.ndarray] = {}
    for backend in backends.values():  # warm-up
        exact.backend = backend
        exact.encode_ids(ids[:128])
    for r in range(rounds):
        for name, backend in backends.items():
            exact.backend = backend
            t0 = time.perf_counter()
            vectors[name] = exact.encode_ids(ids)
            rates[name].append(len(ids) / (time.perf_counter() - t0))
            print(f"round {r + 1} {name}: {rates[name][-1]:.1f} texts/s", flush=True)
    ref = vectors["ORT fp32 plain (reference)"]
    print("\n| runtime | texts/s (median) | rounds | cosine mean / min |\n|---|---|---|---|")
    for name in backends:
        cos = np.sum(vectors[name] * ref, axis=1)
        print(
            f"| {name} | {statistics.median(rates[name]):.1f} | "
            f"{' '.join(f'{x:.0f}' for x in rates[name])} | {cos.mean():.5f} / {cos.min():.5f} |"
        )


if __name__ == "__main__":
    main()
