"""Hybrid fusion: the semantic, full-text and code legs into one ranking, each leg weighed by
how well it represents the query.

Reciprocal rank fusion scores a product ``Σ w_leg / (rrf_k + rank in that leg)`` over the
legs it appears in, plus ``w_code`` for an exact SKU / part-number match and the vehicle
boost. The semantic leg always keeps its weight (1): it embeds the whole query. The
full-text leg's weight is ``lexical`` scaled down when its query lost the query's meaning:

* **coverage** — words dropped as unknown (no correction found) or replaced by a
  correction: ``kept / words`` (a correction counts half), to the power ``coverage_power``;
* **specificity** — the rarest slot's IDF over ``specific_idf`` (capped at 1): a query
  whose every word is common (``brake``, ``rear``) matches thousands of products alike;
* **loose** — the leg found nothing with every word and fell back to any word:
  ``loose``;
* **agreement** — the share of the leg's top 10 that the semantic leg also found, mapped
  to ``agreement_floor + (1 − agreement_floor) · share``: legs that agree reinforce each
  other (RRF adds their scores), a leg that disagrees with the meaning yields.

The defaults were fitted on the judged queries and are reported on held-out folds that the
fitting never saw (``prodsearch bench relevance --tune``; docs/BENCHMARKS.md). The SQL
returns every leg's candidates with their ranks; the fusion runs here, so the benchmark
that fits the weights and the API that serves them share this one implementation.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace

from prodsearch.config import Settings
from prodsearch.jsonvalue import JsonObject
from prodsearch.search.rows import Candidate

AGREEMENT_TOP = 10  # the full-text leg's top results checked against the semantic leg


@dataclass(frozen=True)
class FusionWeights:
    """The fusion's knobs. The configurable ones have their defaults in the settings
    (``PRODSEARCH_RRF_K``, ``PRODSEARCH_LEXICAL_WEIGHT``, ``PRODSEARCH_FUSION_*``):
    :meth:`from_settings`."""

    rrf_k: int
    lexical: float
    coverage_power: float
    specific_idf: float  # 0: specificity not used
    loose: float
    agreement_floor: float  # 1: agreement not used
    semantic: float = 1.0  # the reference leg: not configurable
    code: float = 1.0  # an exact SKU / part-number match: not configurable

    @classmethod
    def from_settings(cls, settings: Settings) -> FusionWeights:
        return cls(
            rrf_k=settings.rrf_k,
            lexical=settings.lexical_weight,
            coverage_power=settings.fusion_coverage_power,
            specific_idf=settings.fusion_specific_idf,
            loose=settings.fusion_loose_weight,
            agreement_floor=settings.fusion_agreement_floor,
        )

    def as_dict(self) -> JsonObject:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class Fused:
    """Hybrid's candidates ranked, best first, each with its ``score``, and the full-text
    leg's weight that ranked them."""

    rows: list[Candidate]
    lexical_weight: float


@dataclass(frozen=True)
class LexicalEvidence:
    """What the query's analysis says about its full-text form (before any SQL)."""

    words: int  # query words (stop words excluded)
    dropped: int  # words left out: unknown, no correction
    corrected: int  # words replaced by their closest indexed term
    best_idf: float  # the rarest slot's IDF (0: no slot)

    @property
    def coverage(self) -> float:
        if self.words == 0:
            return 0.0
        kept = self.words - self.dropped - 0.5 * self.corrected
        return max(0.0, kept / self.words)


def agreement(rows: Sequence[Candidate]) -> float:
    """Share of the full-text leg's top :data:`AGREEMENT_TOP` the semantic leg also found
    (1 when the full-text leg found nothing: there is nothing to weigh)."""
    top = [r for r in rows if r.lexical_rank is not None and r.lexical_rank <= AGREEMENT_TOP]
    if not top:
        return 1.0
    return sum(r.semantic_rank is not None for r in top) / len(top)


def lexical_weight(
    weights: FusionWeights, evidence: LexicalEvidence, loose: bool, agree: float
) -> float:
    """The full-text leg's weight for one query (see the module docstring)."""
    w = weights.lexical * float(evidence.coverage**weights.coverage_power)
    if weights.specific_idf > 0:
        w *= min(1.0, evidence.best_idf / weights.specific_idf)
    if loose:
        w *= weights.loose
    return w * (weights.agreement_floor + (1.0 - weights.agreement_floor) * agree)


def fuse(
    rows: Sequence[Candidate],
    weights: FusionWeights,
    evidence: LexicalEvidence,
    vehicle_boost: float = 0.0,
) -> Fused:
    """The legs' candidates (rows of :func:`prodsearch.search.queries.hybrid`) ranked: each
    gains its ``score``."""
    loose = bool(rows and rows[0].lexical_loose)
    w_lex = lexical_weight(weights, evidence, loose, agreement(rows))
    k = weights.rrf_k
    out = []
    for row in rows:
        score = 0.0
        if row.semantic_rank is not None:
            score += weights.semantic / (k + row.semantic_rank)
        if row.lexical_rank is not None:
            score += w_lex / (k + row.lexical_rank)
        if row.code_match:
            score += weights.code
        score += vehicle_boost * (row.vehicle_match or 0)
        out.append(replace(row, score=score))
    out.sort(
        key=lambda r: (
            -(r.score or 0.0),
            not r.code_match,
            r.lexical_rank if r.lexical_rank is not None else 1 << 30,
            r.product_id,
        )
    )
    return Fused(out, w_lex)
