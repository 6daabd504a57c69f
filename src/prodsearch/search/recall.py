"""Neighbour recall against exact search — one definition for the benches, ``verify`` and
the tests.

Exact neighbours come from a brute-force scan of the stored float32 vectors (index scans
off, so no HNSW index of either shape can answer). A returned product counts when its
exact distance is no larger than the exact ``k``-th neighbour's: tie-aware, since
duplicate texts share one vector and the order among equals is arbitrary. With
``epsilon`` > 0 this is ann-benchmarks' ε-recall: within ``(1 + ε)`` times the ``k``-th
distance.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field

from prodsearch.search.queries import exact_distances, exact_top_k

__all__ = ["EPSILON", "RecallTally", "exact_distances", "exact_top_k", "tie_aware_recall"]

EPSILON = 0.01  # ann-benchmarks' ε for ε-recall
TIE = 1e-9  # float32 distances of one vector computed twice agree to this


def tie_aware_recall(
    distances: Sequence[float],
    kth: float,
    k: int = 10,
    epsilon: float = 0.0,
    tolerance: float = TIE,
) -> float:
    """Share of ``k`` results whose exact distance is within ``(1 + epsilon) * kth``
    (plus ``tolerance``, for distances computed in another precision)."""
    bound = (1 + epsilon) * kth + tolerance
    return sum(d <= bound for d in distances) / k


@dataclass
class RecallTally:
    """Recall@10 over many queries, per query set: strict (tie-aware) and ε-recall. One
    aggregation for ``verify``, ``bench search`` and ``bench index``."""

    strict: dict[str, list[float]] = field(default_factory=dict)
    eps: list[float] = field(default_factory=list)
    id_hits: int = 0

    def add(
        self,
        kind: str,
        distances: Sequence[float],
        kth: float,
        ids: Sequence[int] = (),
        exact_ids: Sequence[int] = (),
    ) -> None:
        """One query: the exact distances of what it returned, the exact ``k``-th
        neighbour's distance, and optionally the ids (for recall by ids)."""
        self.strict.setdefault(kind, []).append(tie_aware_recall(distances, kth))
        self.eps.append(tie_aware_recall(distances, kth, epsilon=EPSILON))
        self.id_hits += len(set(ids) & set(exact_ids))

    @property
    def queries(self) -> int:
        return sum(len(v) for v in self.strict.values())

    def mean(self, kind: str | None = None) -> float:
        """Strict recall@10 over every query, or over one set's (0 when none)."""
        values = self.strict.get(kind, []) if kind else [x for v in self.strict.values() for x in v]
        return round(statistics.fmean(values), 4) if values else 0.0

    def eps_mean(self) -> float:
        return round(statistics.fmean(self.eps), 4) if self.eps else 0.0

    def by_ids(self, k: int = 10) -> float:
        return round(self.id_hits / (k * self.queries), 4) if self.queries else 0.0
