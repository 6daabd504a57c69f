"""Embedding: the encoder (exact / bf16 / int8) and the sync pipeline."""

from prodsearch.embedding.encoder import Encoder, load_encoder

__all__ = ["Encoder", "load_encoder"]
