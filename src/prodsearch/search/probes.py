"""A certificate that a graph search went astray, and the cue to search again wider.

An HNSW search can end in the wrong region. The catalog holds clusters of hundreds of
near-identical products ("Mobil Coolant G12 5L for <vehicle>"); a query near one of them
("coolant pump") can descend into it, fill its whole candidate list with it and stop there,
while the water pumps it wants sit much nearer (docs/BENCHMARKS.md, "coolant pump"). Such
a miss is not a small recall loss: every result is wrong.

It can be detected cheaply. The searcher keeps a few thousand products' vectors in
memory (an even sample of the catalog, reloaded with the vocabulary). Before the search,
the query's nearest sample product is one matrix product away (~0.1 ms). If that product
is closer to the query than the best result the index returned, the index missed at least
it: the search is run again with a wider candidate list (and, should that miss too, exactly).
A search that was right is never changed: the check only ever widens.
"""

from __future__ import annotations

from collections import Counter

import numpy as np

SAMPLE = 2048  # products kept as probes
MARGIN = 0.02  # cosine distance a probe must beat the index's best result by


def as_array(value: object) -> np.ndarray:
    """A vector as float32 numpy, whether pgvector returned a ``Vector`` or an array."""
    to_numpy = getattr(value, "to_numpy", None)
    return np.asarray(to_numpy() if to_numpy else value, dtype=np.float32)


def leading(categories: list[str | None], share: int) -> set[str]:
    """The product types a ranking leads with: its first category, and any other that
    ``share`` of its entries hold (empty when none has a category)."""
    cats = [c for c in categories if c is not None]
    if not cats:
        return set()
    counts = Counter(cats)
    return {cats[0], *(c for c, k in counts.items() if k >= share)}


class TrapProbes:
    """Sample products' vectors; :meth:`missed` says when a search result cannot be the
    nearest."""

    def __init__(
        self,
        ids: list[int] | None = None,
        vectors: np.ndarray | None = None,
        categories: list[str | None] | None = None,
    ) -> None:
        self.ids = np.asarray(ids or [], dtype=np.int64)
        self.categories = list(categories or [None] * len(self.ids))
        self.vectors = (
            np.asarray(vectors, dtype=np.float32)
            if vectors is not None and len(self.ids)
            else np.zeros((0, 1), dtype=np.float32)
        )

    def __len__(self) -> int:
        return len(self.ids)

    def nearest(self, vector: np.ndarray, exclude: int = -1) -> float:
        """Cosine distance from ``vector`` to the nearest probe (``exclude``: a product id
        that does not count, the one a "similar" search starts from); inf without probes."""
        if not len(self.ids):
            return float("inf")
        return float(1.0 - self._similarities(vector, exclude).max())

    def _similarities(self, vector: np.ndarray, exclude: int) -> np.ndarray:
        """Cosine similarity of every probe to ``vector``; ``exclude``'s is -inf."""
        sims = self.vectors @ as_array(vector)
        if exclude >= 0:
            sims = np.where(self.ids == exclude, -np.inf, sims)
        return np.asarray(sims)

    def neighbours(self, vector: np.ndarray, n: int, exclude: int = -1) -> list[int]:
        """The ids of the ``n`` probes nearest to ``vector``, nearest first (``exclude``
        left out): the query's neighbourhood at the sample's resolution (:mod:`~.filterplan`)."""
        if not len(self.ids):
            return []
        sims = self._similarities(vector, exclude)
        n = min(n, len(self.ids))
        top = np.argpartition(-sims, n - 1)[:n]
        top = top[np.argsort(-sims[top], kind="stable")]
        return [int(i) for i in self.ids[top] if i != exclude]

    def missed(self, vector: np.ndarray, best_distance: float | None, exclude: int = -1) -> bool:
        """True when a probe is closer to ``vector`` than the search's best result by more
        than :data:`MARGIN`: the search cannot have found the nearest products."""
        if best_distance is None or not len(self.ids):
            return False
        return self.nearest(vector, exclude) < best_distance - MARGIN

    def lead_categories(self, vector: np.ndarray, n: int, share: int) -> set[str]:
        """The categories of the ``n`` probes nearest to ``vector`` in meaning: the nearest
        one's, and any other at least ``share`` of them hold — the product types a query
        asks for, at the sample's resolution and whatever a full-text leg matched."""
        nearest = self.neighbours(vector, n)
        at = {int(pid): i for i, pid in enumerate(self.ids)}
        return leading([self.categories[at[pid]] for pid in nearest], share)
