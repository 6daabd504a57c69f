"""What a run (or a watch batch) must write: candidate rows → unique prepared texts.

One planning for ``embed`` and ``watch``, so both give the same rows and hashes: each
candidate's text is prepared and hashed; a row whose prepared text is unchanged only gets
its raw hash refreshed; identical texts are grouped and embedded once.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from prodsearch.catalog.text import content_hash, prepare_text
from prodsearch.config import EncoderMode

log = logging.getLogger("prodsearch.sync")


@dataclass
class Work:
    """One unique prepared text and the products that carry it."""

    text: str
    chash: str
    ids: list[int] = field(default_factory=list)
    shashes: list[str] = field(default_factory=list)


@dataclass
class Plan:
    """Unique texts to embed (length-sorted: batches of similar length pad little), and
    the rows whose prepared text is unchanged (only their raw hash is refreshed)."""

    work: list[Work] = field(default_factory=list)
    refresh_ids: list[int] = field(default_factory=list)
    refresh_hashes: list[str] = field(default_factory=list)
    scanned: int = 0  # candidate rows examined
    failed: int = 0  # rows without text after preparation
    rows: int = 0  # rows to write

    @property
    def deduplicated(self) -> int:
        return self.rows - len(self.work)


def plan_rows(
    candidates: Iterable[tuple[Any, ...]],
    text_columns: tuple[str, ...],
    max_chars: int,
    model: str,
    mode: EncoderMode,
    full_refresh: bool = False,
    limit: int | None = None,
    max_tokens: int | None = None,
) -> Plan:
    """``candidates``: ``(id, source_hash, stored_content_hash, *text columns)`` rows, as
    :func:`prodsearch.embedding.store.candidates` yields them. ``max_tokens``: the
    encoder's :attr:`~prodsearch.embedding.encoder.Encoder.hash_cap`."""
    plan = Plan()
    groups: dict[str, Work] = {}
    for pid, shash, stored, *texts in candidates:
        plan.scanned += 1
        text = prepare_text(dict(zip(text_columns, texts, strict=True)), text_columns, max_chars)
        if not text:
            plan.failed += 1
            log.warning("product %s has no text after preparation: not embedded", pid)
            continue
        chash = content_hash(text, model, mode, max_tokens)
        if chash == stored and not full_refresh:
            plan.refresh_ids.append(pid)
            plan.refresh_hashes.append(shash)
            continue
        if limit is not None and plan.rows >= limit:
            continue
        work = groups.get(chash)
        if work is None:
            work = groups[chash] = Work(text, chash)
        work.ids.append(pid)
        work.shashes.append(shash)
        plan.rows += 1
    plan.work = sorted(groups.values(), key=lambda w: len(w.text))
    return plan


def flatten(
    chunk: list[Work], vectors: np.ndarray
) -> tuple[list[int], np.ndarray, list[str], list[str]]:
    """Rows of a chunk of unique texts: (ids, one vector per id, content hashes, source
    hashes) — each text's vector for every product carrying it."""
    ids = [pid for w in chunk for pid in w.ids]
    rows = np.repeat(vectors, [len(w.ids) for w in chunk], axis=0)
    chashes = [w.chash for w in chunk for _ in w.ids]
    shashes = [h for w in chunk for h in w.shashes]
    return ids, rows, chashes, shashes
