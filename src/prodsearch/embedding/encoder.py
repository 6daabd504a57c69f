"""The encoder: one ``encode()`` contract over three precision modes.

===========  =========================================  ===============================
mode         backend                                    fidelity to sentence-transformers
===========  =========================================  ===============================
``exact``    ONNX Runtime, fp32                         identical (cosine ≥ 0.9999)
``bf16``     OpenVINO, bfloat16 inference precision     cosine ≥ 0.9999
``int8``     ONNX Runtime, dynamic per-channel int8     mean cosine ≥ 0.985
``int8-static`` OpenVINO, NNCF int8 (calibrated scales) mean cosine ≥ 0.995
===========  =========================================  ===============================

``encode(texts)`` returns float32 ``(n, dim)`` rows, L2-normalised, in input order.
Identical texts are encoded once. Texts are tokenised (truncated at ``max_tokens``: the
model's limit, 256 for all-MiniLM-L6-v2, or the configured cap when lower), sorted by
token length and batched under a token budget, so batches carry almost no padding.
Inference runs on all cores and releases the GIL, so I/O threads keep working meanwhile;
bulk bf16 runs one single-threaded stream per core, each on whole batches
(:class:`OpenVinoBackend`).
An empty text is an error (text preparation never produces one).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from prodsearch.config import DEFAULT_MODEL, ENCODER_MODES, EncoderMode, Settings, encoder_mode
from prodsearch.embedding.cpu import cpu_flags
from prodsearch.embedding.model import resolve_model
from prodsearch.errors import ConfigError

log = logging.getLogger("prodsearch.encoder")

MODES = ENCODER_MODES
DEFAULT_BATCH = 64  # texts per encoder batch unless a caller says otherwise
# Tokens per batch (batch size x padded length), measured best per backend on 2 cores.
TOKEN_BUDGET = {"exact": 2048, "bf16": 4096, "int8": 1024, "int8-static": 4096}


def openvino_precision(mode: EncoderMode) -> str:
    """The precision OpenVINO runs a mode's graph at. int8-static's quantized layers run
    int8 whatever this says; its other layers (attention's softmax, layer norms, GELU) run
    at bf16 on a CPU with bf16 units (4 % faster on AVX-512 BF16, same cosine to exact:
    docs/BENCHMARKS.md), f32 elsewhere."""
    if mode == "bf16":
        return "bf16"
    flags = cpu_flags()
    return "bf16" if {"avx512_bf16", "amx_bf16"} & flags else "f32"


OPENVINO_MODES = ("bf16", "int8-static")


def cpu_threads() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


Batch = tuple[np.ndarray, np.ndarray]  # (input_ids, attention_mask), padded


class Backend(Protocol):
    def run(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        """Pooled, un-normalised embeddings for one padded batch."""
        ...

    def run_many(self, batches: Sequence[Batch]) -> list[np.ndarray]:
        """:meth:`run` over many batches, results in order (concurrently where the
        backend has several inference streams)."""
        ...


class OnnxBackend:
    def __init__(self, path: Path, threads: int, spin: bool = True) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        if not spin:  # idle threads must not busy-wait on cores the database needs
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def run(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        out = self.session.run(None, {"input_ids": input_ids, "attention_mask": attention_mask})
        return np.asarray(out[0], dtype=np.float32)

    def run_many(self, batches: Sequence[Batch]) -> list[np.ndarray]:
        return [self.run(ids, mask) for ids, mask in batches]


class OpenVinoBackend:
    """OpenVINO on the CPU at a given inference precision (``bf16``: AMX or AVX-512 BF16
    matrix units where the CPU has them, f32 otherwise). One inference request per
    calling thread: a request is not safe to share, the compiled model is.

    ``streams`` > 1 (bulk encoding): that many single-threaded inference streams, each
    running whole batches, instead of every batch split across all threads. On 2 cores
    that is 1.14x faster alone and 1.4x faster beside another busy thread (the pipeline's
    writer and tokeniser, the database backend): a split batch waits at every layer for
    its slowest thread, and a thread preempted by other work stalls them all; a stream
    preempted stalls only itself. One text at a time (queries) keeps one stream on all
    threads, the lowest latency."""

    def __init__(self, path: Path, threads: int, precision: str = "bf16", streams: int = 1) -> None:
        import openvino as ov

        core = ov.Core()
        config: dict[str, int | str] = {  # OpenVINO CPU properties
            "INFERENCE_NUM_THREADS": threads,
            "INFERENCE_PRECISION_HINT": precision,
            "PERFORMANCE_HINT": "LATENCY",
        }
        if streams > 1:
            config.update(PERFORMANCE_HINT="THROUGHPUT", NUM_STREAMS=streams)
        self.streams = streams
        self.compiled = core.compile_model(core.read_model(str(path)), "CPU", config)
        self.output = self.compiled.output(0)
        self.local = threading.local()

    def run(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        request = getattr(self.local, "request", None)
        if request is None:
            request = self.local.request = self.compiled.create_infer_request()
        out = request.infer({"input_ids": input_ids, "attention_mask": attention_mask})
        return np.array(out[self.output], dtype=np.float32)

    def run_many(self, batches: Sequence[Batch]) -> list[np.ndarray]:
        if self.streams == 1 or len(batches) < 2:
            return [self.run(ids, mask) for ids, mask in batches]
        import openvino as ov

        pool = getattr(self.local, "pool", None)
        if pool is None:
            pool = self.local.pool = ov.AsyncInferQueue(self.compiled, self.streams)
        results: list[np.ndarray | None] = [None] * len(batches)

        def done(request: Any, index: int) -> None:  # copied: the request's buffer is reused
            results[index] = np.array(request.get_output_tensor(0).data, dtype=np.float32)

        pool.set_callback(done)
        for index, (ids, mask) in enumerate(batches):
            pool.start_async({"input_ids": ids, "attention_mask": mask}, index)
        pool.wait_all()
        missing = [i for i, r in enumerate(results) if r is None]
        if missing:
            raise RuntimeError(f"inference returned no result for batches {missing}")
        return [r for r in results if r is not None]


@dataclass
class Encoder:
    """Text → L2-normalised float32 vectors. Build with :func:`load_encoder`."""

    model_name: str
    mode: EncoderMode
    dim: int
    max_tokens: int
    backend: Backend
    tokenizer: Any
    max_batch: int = 64
    token_budget: int = 2048
    hash_cap: int | None = None  # the token cap when below the model's limit (in hashes)
    stats: dict[str, int] = field(default_factory=lambda: {"texts": 0, "tokens": 0, "padded": 0})

    def tokenize(self, texts: Sequence[str]) -> list[list[int]]:
        """Token ids per text (with [CLS]/[SEP], truncated at ``max_tokens``)."""
        for i, text in enumerate(texts):
            if not isinstance(text, str) or not text.strip():
                raise ValueError(
                    f"text {i} is empty: the encoder needs non-empty text "
                    "(prepare_text guarantees it for valid products)"
                )
        return [enc.ids for enc in self.tokenizer.encode_batch(list(texts))]

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Encode texts; see the module docstring for the contract."""
        if len(texts) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        position: dict[str, int] = {}
        inverse = np.fromiter(
            (position.setdefault(t, len(position)) for t in texts), dtype=np.int64, count=len(texts)
        )
        unique = list(position)
        vectors = self.encode_ids(self.tokenize(unique))
        return vectors if len(unique) == len(texts) else vectors[inverse]

    def padded_batches(self, ids: Sequence[Sequence[int]]) -> list[tuple[np.ndarray, Batch]]:
        """The batches :meth:`encode_ids` runs: (row indices into ``ids``, padded batch),
        length-sorted, at most ``max_batch`` texts and ``token_budget`` padded tokens."""
        lengths = np.fromiter((len(x) for x in ids), dtype=np.int64, count=len(ids))
        order = np.argsort(lengths, kind="stable")
        out: list[tuple[np.ndarray, Batch]] = []
        start = 0
        while start < len(order):
            end = start + 1
            while end < len(order) and end - start < self.max_batch:
                if (end - start + 1) * lengths[order[end]] > self.token_budget:
                    break
                end += 1
            batch = order[start:end]
            width = int(lengths[batch[-1]])
            input_ids = np.zeros((len(batch), width), dtype=np.int64)
            mask = np.zeros((len(batch), width), dtype=np.int64)
            for row, idx in enumerate(batch):
                seq = ids[idx]
                input_ids[row, : len(seq)] = seq
                mask[row, : len(seq)] = 1
            out.append((batch, (input_ids, mask)))
            start = end
        return out

    def encode_ids(self, ids: Sequence[Sequence[int]]) -> np.ndarray:
        """Encode pre-tokenised texts (length-sorted, token-budget batches)."""
        out = np.empty((len(ids), self.dim), dtype=np.float32)
        batches = self.padded_batches(ids)
        results = self.backend.run_many([padded for _, padded in batches])
        for (rows, (_, mask)), vectors in zip(batches, results, strict=True):
            out[rows] = vectors
            self.stats["texts"] += len(rows)
            self.stats["tokens"] += int(mask.sum())
            self.stats["padded"] += mask.size
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        np.maximum(norms, 1e-12, out=norms)
        out /= norms
        return out


def _token_cap(max_tokens: int | None, limit: int) -> tuple[int, int | None]:
    """(where texts are cut, the cap named in content hashes): the configured cap or the
    model's ``limit`` when lower; named in hashes only when it cuts below the limit."""
    cap = min(max_tokens or limit, limit)
    return cap, (cap if cap < limit else None)


def hash_cap(settings: Settings) -> int | None:
    """The token cap that encoders built from ``settings`` name in content hashes
    (:attr:`Encoder.hash_cap`)."""
    source = resolve_model(settings.model, settings.models_dir)
    return _token_cap(settings.max_tokens, source.max_tokens)[1]


def encoder_for(
    settings: Settings,
    mode: EncoderMode,
    *,
    max_batch: int | None = None,
    threads: int | None = None,
    for_queries: bool = False,
    spin: bool | None = None,
) -> Encoder:
    """:func:`load_encoder` with what ``settings`` say: the model, the export cache, the
    batch size (``max_batch`` overrides it) and the token cap. ``mode``: a concrete mode
    (the documents' mode in force comes from :mod:`prodsearch.embedding.modes`)."""
    return load_encoder(
        mode,
        settings.model,
        models_dir=settings.models_dir,
        max_batch=max_batch or settings.batch_size,
        threads=threads,
        for_queries=for_queries,
        spin=spin,
        max_tokens=settings.max_tokens,
    )


def load_encoder(
    mode: str = "exact",
    model: str = DEFAULT_MODEL,
    *,
    models_dir: Path,
    max_batch: int = DEFAULT_BATCH,
    threads: int | None = None,
    for_queries: bool = False,
    spin: bool | None = None,
    max_tokens: int | None = None,
) -> Encoder:
    """Load the encoder for ``mode`` (exporting the ONNX model on first use).

    ``for_queries``: tuned for one short text at a time next to a database on the same
    cores — ONNX Runtime's worker threads do not spin between calls (spinning threads
    would take CPU from the PostgreSQL backend answering the same request), and int8 runs
    on one thread (a short text's int8 products are too small to split: 0.9 ms on one
    thread, 1.6 ms on two). ``spin``: whether idle inference threads busy-wait (default:
    not for queries); a background worker beside an API turns it off too.
    """
    mode = encoder_mode(mode)
    source = resolve_model(model, models_dir)
    spin = not for_queries if spin is None else spin
    if not threads:
        query_threads = 1 if mode == "int8" else min(2, cpu_threads())
        threads = query_threads if for_queries else cpu_threads()
    backend: Backend
    from prodsearch.embedding.export import discard, onnx_model

    def backend_for(path: Path) -> Backend:
        if mode in OPENVINO_MODES:  # bulk work: a single-threaded stream per thread
            streams = 1 if for_queries else threads
            return OpenVinoBackend(path, threads, openvino_precision(mode), streams=streams)
        return OnnxBackend(path, threads, spin=spin)

    path = onnx_model(source, mode, models_dir)
    try:
        backend = backend_for(path)
    except Exception as exc:  # a damaged export: rebuilt once, then a clear error
        log.warning("the cached model %s cannot be loaded (%s): exporting it again", path, exc)
        discard(path)
        try:
            backend = backend_for(onnx_model(source, mode, models_dir))
        except Exception as again:
            raise ConfigError(
                f"the model export {path} cannot be loaded ({again}): delete {path.parent} "
                "and retry, or set PRODSEARCH_MODEL_CACHE to another folder"
            ) from again
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(source.path / "tokenizer.json"))
    cap, in_hash = _token_cap(max_tokens, source.max_tokens)
    tokenizer.enable_truncation(cap)
    tokenizer.no_padding()
    return Encoder(
        model_name=source.name,
        mode=mode,
        dim=source.dim,
        max_tokens=cap,
        backend=backend,
        tokenizer=tokenizer,
        max_batch=max_batch,
        token_budget=TOKEN_BUDGET[mode],
        hash_cap=in_hash,
    )
