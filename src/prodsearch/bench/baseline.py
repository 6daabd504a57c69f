"""The comparison baseline every benchmark measures: sentence-transformers fp32 on CPU."""

from __future__ import annotations

from typing import Any

from prodsearch.embedding.model import resolve_model
from prodsearch.errors import ConfigError


def sentence_transformer() -> Any:
    """The bundled model in sentence-transformers, loaded without progress bars."""
    try:
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as hf_logging
    except ImportError as exc:
        raise ConfigError(
            "the benchmarks' baseline (the original method, sentence-transformers) is not "
            "installed: pip install 'prodsearch[bench]'"
        ) from exc
    hf_logging.disable_progress_bar()
    return SentenceTransformer(str(resolve_model().path), device="cpu")
