"""The comparison baseline every benchmark measures: sentence-transformers fp32 on CPU."""

from __future__ import annotations

from typing import Any

from prodsearch.embedding.model import resolve_model


def sentence_transformer() -> Any:
    """The bundled model in sentence-transformers, loaded without progress bars."""
    from sentence_transformers import SentenceTransformer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    return SentenceTransformer(str(resolve_model().path), device="cpu")
