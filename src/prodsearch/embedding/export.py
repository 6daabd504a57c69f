"""One-time ONNX export (and int8 quantization) of the model, cached under ``models_dir``.

Files: ``<models_dir>/<model-slug>/<mode>.onnx`` with ``<mode>.manifest.json`` recording
the source files' sha256, the mode and the library versions. A missing or stale
manifest triggers a rebuild. Builds take a file lock, so two processes starting at once
build once; the model file is written to a temporary name and renamed into place.

The exported graph takes ``input_ids`` and ``attention_mask`` and returns the pooled
sentence embedding (mean over real tokens, or CLS), not yet normalised.

exact: the exported graph with attention, layer norms and GELU fused into ONNX Runtime's
transformer kernels (``onnxruntime.transformers``): the same arithmetic in fewer, larger
operators, which is what a one-text query pays for (its matrices are tiny). The fused
graph is kept only when it gives the plain graph's outputs (to 1e-5) on a padded probe
batch; otherwise the plain graph is used.

bf16: the plain fp32 graph, which OpenVINO compiles at bfloat16 inference precision.

int8: dynamic quantization, per-channel int8 weights with uint8 activations and no
reduced range (the configuration that suits AVX-512 VNNI). Per-tensor int8 loses too
much fidelity (mean cosine ~0.95) and is not offered.

int8-static: the plain graph quantized by NNCF for OpenVINO (weights and activations
int8, activation scales calibrated once on catalog-like texts, SmoothQuant on), saved as
OpenVINO IR (``int8-static.xml`` + ``.bin``). On a CPU without AMX it is the fastest
faithful mode (VNNI int8 kernels; docs/BENCHMARKS.md, "Encoders without AMX").
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
import shutil
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prodsearch.config import EncoderMode, encoder_mode
from prodsearch.embedding.model import CACHED_FOLDER, CachedSource, ModelSource, keep_in_cache

if TYPE_CHECKING:
    import numpy as np

EXPORT_VERSION = 2  # 2: fused exact graph
EXPORT_PACKAGES = ("torch", "transformers", "onnx", "nncf")  # the `export` extra: building only
FUSE_TOLERANCE = 1e-5
ONNX_MODES = ("exact", "bf16", "int8", "int8-static")
IR_MODES = ("int8-static",)  # saved as OpenVINO IR (.xml beside its .bin), not ONNX
CALIBRATION_TEXTS = 300  # int8-static: texts whose activations set the scales
CALIBRATION_SEED = 777  # the generator's seed for them (not the demo catalog's 42)


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"export_version": str(EXPORT_VERSION)}
    for pkg in ("torch", "transformers", "onnx", "onnxruntime", "nncf", "openvino"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = "missing"
    return out


# the code an export is built by: this module, and the catalog text generator and text
# preparation int8-static is calibrated on (relative to the package)
RECIPE_FILES = ("embedding/export.py", "catalog/generate.py", "catalog/vocab.py", "catalog/text.py")


@functools.cache
def recipe() -> str:
    """A hash of the code that builds exports: an export made by other code (an older
    prodsearch) is rebuilt where this install can build, as after a library upgrade."""
    package = Path(__file__).resolve().parent.parent
    digest = hashlib.sha256()
    for rel in RECIPE_FILES:
        digest.update(rel.encode() + b"\0" + (package / rel).read_bytes())
    return digest.hexdigest()[:16]


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_")[-80:]


def model_folder(name: str, models_dir: Path) -> Path:
    """Where a model's exports (and its source's copy) live in a model cache."""
    return models_dir / _slug(name)


def _fresh(manifest_path: Path, target: Path, source: ModelSource, mode: EncoderMode) -> bool:
    if not (manifest_path.exists() and target.exists()):
        return False
    try:
        manifest = json.loads(manifest_path.read_text())
    except ValueError:
        return False
    if not all(f.exists() for f in export_files(target)):
        return False
    return bool(
        manifest.get("mode") == mode
        and manifest.get("size") == _size(target)  # truncated or replaced: cheap
        and manifest.get("sha256") == _sha256(target)  # damaged in place (~0.1 s a load)
        and _same_versions(manifest.get("versions") or {})
        and manifest.get("source") == source.fingerprint(manifest.get("source"))
        # a runtime-only install cannot rebuild: it takes a cache prepared elsewhere
        and (manifest.get("recipe") == recipe() or not can_build())
    )


def _same_versions(recorded: dict[str, str]) -> bool:
    """Whether an export was built with the libraries installed here. One that builds
    exports (PyTorch …) but is absent here is not compared: a runtime-only install uses a
    cache prepared elsewhere, whose file the size and SHA-256 check already."""
    here = _versions()
    return all(
        recorded.get(pkg) == version
        for pkg, version in here.items()
        if not (pkg in EXPORT_PACKAGES and version == "missing")
    )


def can_build() -> bool:
    """Whether this install can build exports (the ``export`` extra is installed)."""
    from importlib.util import find_spec

    return all(find_spec(pkg) is not None for pkg in EXPORT_PACKAGES)


def onnx_model(source: ModelSource, mode: EncoderMode, models_dir: Path) -> Path:
    """Path of the ONNX model for ``mode``, exporting it when needed."""
    if mode not in ONNX_MODES:
        raise ValueError(f"no ONNX export for mode {mode!r}")
    folder = model_folder(source.name, models_dir)
    target = export_target(folder, mode)
    if _fresh(folder / f"{mode}.manifest.json", target, source, mode):
        if not isinstance(source, CachedSource) and not (folder / CACHED_FOLDER).exists():
            keep_in_cache(source, folder)  # a cache built before copies were kept
        return target
    import fasteners

    folder.mkdir(parents=True, exist_ok=True)
    with fasteners.InterProcessLock(str(folder / ".lock")):
        if not _fresh(folder / f"{mode}.manifest.json", target, source, mode):
            if not can_build():
                from prodsearch.errors import ConfigError

                raise ConfigError(
                    f"the model cache {folder} has no usable {mode} export, and building one "
                    "needs PyTorch, which this install lacks: pip install 'prodsearch[export]' "
                    "here, or run `prodsearch model export` where it is installed and point "
                    "PRODSEARCH_MODEL_CACHE at that cache"
                )
            _build_in_child(source, mode, folder)
    return target


def _build_in_child(source: ModelSource, mode: EncoderMode, folder: Path) -> None:
    """Export in a child process: PyTorch (~475 MB resident) and the exporters' logging
    set-up never enter the process that asked (a server, an embed run)."""
    import subprocess
    import sys

    from prodsearch.errors import ConfigError

    done = subprocess.run(
        [sys.executable, "-m", "prodsearch.embedding.export", source.name, mode, str(folder)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        tail = " ".join(done.stderr.strip().splitlines()[-3:])[-600:]
        raise ConfigError(f"exporting the {mode} model to {folder} failed: {tail}")


def export_target(folder: Path, mode: EncoderMode) -> Path:
    """The file an encoder loads for ``mode`` (an IR's .xml names its .bin beside it)."""
    return folder / f"{mode}.{'xml' if mode in IR_MODES else 'onnx'}"


def export_files(target: Path) -> list[Path]:
    """The files of one export: the model file, and an IR's weights."""
    return [target, target.with_suffix(".bin")] if target.suffix == ".xml" else [target]


def _size(target: Path) -> int:
    return sum(f.stat().st_size for f in export_files(target))


def _file_sha256(path: Path) -> bytes:
    with path.open("rb") as fh:
        return hashlib.file_digest(fh, "sha256").digest()


def _sha256(target: Path) -> str:
    """One file's SHA-256; for an IR, the SHA-256 of its two files' digests."""
    files = export_files(target)
    if len(files) == 1:
        return _file_sha256(target).hex()
    return hashlib.sha256(b"".join(_file_sha256(f) for f in files)).hexdigest()


def discard(target: Path) -> None:
    """Forget an export (its manifest first), so that the next use builds it again."""
    target.with_name(target.stem + ".manifest.json").unlink(missing_ok=True)
    for path in export_files(target):
        path.unlink(missing_ok=True)


def _build(source: ModelSource, mode: EncoderMode, folder: Path) -> Path:
    """Export (exact) or quantize (int8) unless fresh; the caller holds the folder lock."""
    target = export_target(folder, mode)
    manifest_path = folder / f"{mode}.manifest.json"
    if _fresh(manifest_path, target, source, mode):  # built by another process meanwhile
        return target
    started = time.perf_counter()
    fused = False
    if mode == "exact":
        fused = _export_fp32(source, target, fuse=True)
    elif mode == "bf16":  # the plain graph: OpenVINO fuses it for its own kernels
        _export_fp32(source, target, fuse=False)
    else:  # quantized from the plain graph
        plain = _atomic_target(folder / "plain.onnx")
        try:
            _export_fp32(source, plain, fuse=False)
            if mode == "int8":
                _quantize_int8(plain, target)
            else:
                _quantize_static_int8(plain, target, source)
        finally:
            plain.unlink(missing_ok=True)
    manifest = {
        "mode": mode,
        "model": source.name,
        "source": source.fingerprint(),
        "fused": fused,
        "size": _size(target),
        "sha256": _sha256(target),
        "versions": _versions(),
        "recipe": recipe(),
        "build_seconds": round(time.perf_counter() - started, 2),
    }
    manifest_path.write_text(json.dumps(manifest, indent=2))
    keep_in_cache(source, folder)  # what a runtime-only install reads instead of the model
    return target


def _atomic_target(target: Path) -> Path:
    fd, tmp = tempfile.mkstemp(prefix=target.stem + ".", suffix=".tmp.onnx", dir=target.parent)
    os.close(fd)
    os.chmod(tmp, 0o644)
    return Path(tmp)


def _export_fp32(source: ModelSource, target: Path, fuse: bool) -> bool:
    """Export the pooled model to ``target``; whether its graph was fused."""
    import warnings

    import torch
    from transformers import AutoModel

    model = AutoModel.from_pretrained(str(source.path), attn_implementation="eager").eval()
    pooling = source.pooling

    class Pooled(torch.nn.Module):  # type: ignore[misc]  # torch is not analysed (pyproject)
        def __init__(self, inner: Any) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            hidden: torch.Tensor = self.inner(
                input_ids=input_ids,
                attention_mask=attention_mask,
                token_type_ids=torch.zeros_like(input_ids),
            ).last_hidden_state
            if pooling == "cls":
                return hidden[:, 0]
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)

    dummy = torch.ones(2, 8, dtype=torch.long)
    tmp = _atomic_target(target)
    try:
        with warnings.catch_warnings(), torch.inference_mode():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                Pooled(model),
                (dummy, dummy),
                str(tmp),
                input_names=["input_ids", "attention_mask"],
                output_names=["embedding"],
                dynamic_axes={
                    "input_ids": {0: "batch", 1: "seq"},
                    "attention_mask": {0: "batch", 1: "seq"},
                    "embedding": {0: "batch"},
                },
                opset_version=17,
                dynamo=False,
            )
        fused = fuse and _fuse(tmp, source)
        os.replace(tmp, target)
        return fused
    finally:
        tmp.unlink(missing_ok=True)


def _probe_outputs(path: Path) -> Any:
    """Outputs for a padded probe batch (two texts of different lengths)."""
    import numpy as np
    import onnxruntime as ort

    ids = np.array(
        [
            [101, 7743, 17406, 2005, 2175, 102, 0, 0, 0],
            [101, 2019, 4264, 1998, 1037, 7308, 3269, 2005, 102],
        ],
        dtype=np.int64,
    )
    mask = (ids != 0).astype(np.int64)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {"input_ids": ids, "attention_mask": mask})[0]


def _fuse(path: Path, source: ModelSource) -> bool:
    """Fuse the transformer blocks of the ONNX graph at ``path`` in place; ``False`` (and
    the plain graph left as it was) when the optimizer cannot or the outputs differ."""
    import logging

    import numpy as np

    fused = path.with_name(path.stem + ".fused.onnx")
    try:
        from onnxruntime.transformers.optimizer import optimize_model

        config = json.loads((source.path / "config.json").read_text())
        root = logging.getLogger()
        level = root.level
        root.setLevel(logging.ERROR)  # the optimizer logs each fusion it tries
        try:
            model = optimize_model(
                str(path),
                model_type="bert",
                num_heads=int(config["num_attention_heads"]),
                hidden_size=int(config["hidden_size"]),
                opt_level=1,
            )
        finally:
            root.setLevel(level)
        model.save_model_to_file(str(fused))
        diff = float(np.abs(_probe_outputs(fused) - _probe_outputs(path)).max())
        if diff > FUSE_TOLERANCE:
            return False
        os.replace(fused, path)
        return True
    except Exception:  # an architecture the optimizer does not know: the plain graph
        return False
    finally:
        fused.unlink(missing_ok=True)


def _quantize_int8(fp32: Path, target: Path) -> None:
    import logging

    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    tmp = _atomic_target(target)
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # the quantizer warns about pre-processing
    try:
        quantize_dynamic(
            str(fp32),
            str(tmp),
            per_channel=True,
            reduce_range=False,
            weight_type=QuantType.QInt8,
            extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
        )
        os.replace(tmp, target)
    finally:
        root.setLevel(level)
        tmp.unlink(missing_ok=True)


def calibration_batches(source: ModelSource) -> list[dict[str, np.ndarray]]:
    """Padded, length-sorted batches of catalog-like texts (the demo generator's, another
    seed than the demo's) for int8-static's activation scales: the shapes bulk encoding
    runs, up to the model's token limit."""
    import numpy as np
    from tokenizers import Tokenizer

    from prodsearch.catalog.generate import COLUMNS, rows
    from prodsearch.catalog.text import prepare_text

    texts = list(
        dict.fromkeys(
            prepare_text(dict(zip(COLUMNS, r, strict=True)))
            for r in rows(CALIBRATION_TEXTS * 2, CALIBRATION_SEED)
        )
    )[:CALIBRATION_TEXTS]
    tokenizer = Tokenizer.from_file(str(source.path / "tokenizer.json"))
    tokenizer.enable_truncation(source.max_tokens)
    tokenizer.no_padding()
    ids = sorted((e.ids for e in tokenizer.encode_batch(texts)), key=len)
    batches = []
    for start in range(0, len(ids), 32):
        chunk = ids[start : start + 32]
        width = len(chunk[-1])
        input_ids = np.zeros((len(chunk), width), dtype=np.int64)
        for row, seq in enumerate(chunk):
            input_ids[row, : len(seq)] = seq
        batches.append(
            {"input_ids": input_ids, "attention_mask": (input_ids != 0).astype(np.int64)}
        )
    return batches


def _quantize_static_int8(fp32: Path, target: Path, source: ModelSource) -> None:
    """NNCF post-training quantization for OpenVINO, saved as IR at ``target`` (.xml)."""
    import logging

    import nncf
    import openvino as ov

    logging.getLogger("nncf").setLevel(logging.ERROR)
    model = ov.Core().read_model(str(fp32))
    batches = calibration_batches(source)
    quantized = nncf.quantize(
        model,
        nncf.Dataset(batches),
        model_type=nncf.ModelType.TRANSFORMER,
        subset_size=len(batches),
        advanced_parameters=nncf.AdvancedQuantizationParameters(
            smooth_quant_alphas=nncf.AdvancedSmoothQuantParameters(matmul=0.95)
        ),
    )
    staging = Path(tempfile.mkdtemp(prefix=target.stem + ".", dir=target.parent))
    try:  # the weights first: the .xml appearing is what makes the export whole
        ov.save_model(quantized, str(staging / target.name), compress_to_fp16=False)
        os.replace(staging / target.with_suffix(".bin").name, target.with_suffix(".bin"))
        os.replace(staging / target.name, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


if __name__ == "__main__":  # the child of _build_in_child: MODEL MODE FOLDER
    import sys

    from prodsearch.embedding.model import resolve_model

    _build(resolve_model(sys.argv[1]), encoder_mode(sys.argv[2]), Path(sys.argv[3]))
