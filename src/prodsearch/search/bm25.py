"""BM25 for the full-text leg: how rare each part of the query is, and how long a product's
text is.

PostgreSQL's ``ts_rank_cd`` knows neither: matching ``brake``, which tens of thousands of
products contain, scores like matching ``wahacz``. Here each *slot* of the query (a word or
synonym phrase with its alternatives: :mod:`prodsearch.search.lexquery`) gets an inverse
document frequency from the term vocabulary (``search_terms``: every indexed lexeme with
its document count), and the SQL scores a product

    Σ over slots  idf · tf · (k1 + 1) / (tf + k1 · (1 − b + b · length / mean length))

where ``tf`` is 1 when the slot matches the product's name, plus :data:`DESCRIPTION_TF`
when it matches its description (BM25F with a binary count per field: product texts are
short and repeat words in templates, so counting repeats adds noise, not evidence) and
``length`` is the number of lexemes in the product's full-text column (b 0.3: see :data:`B`).

A slot's document frequency is estimated from the vocabulary: a word's is the largest
count among its forms (surface word and stems, which the documents index together), a
phrase's the smallest among its words, a slot's the sum over its alternatives (at most
the catalog). The same estimates say how *specific* a query's lexical form is, which
:mod:`prodsearch.search.fusion` uses to weigh the leg.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from prodsearch.catalog.lexical import forms
from prodsearch.search.synonyms import Phrase

K1 = 1.2
# Length normalisation, weaker than the textbook 0.75: a product without Polish texts has
# half the lexemes of one with both languages, and at 0.75 such products outranked the
# bilingual ones for Polish queries (docs/BENCHMARKS.md, "What changed, in the order it
# was measured").
B = 0.3
DESCRIPTION_TF = 0.4  # a description match counts this much of a name match
HEAD_BOOST = 2.0  # the head noun's slot counts this much more (see head_slot)


@dataclass(frozen=True)
class CorpusStats:
    """Document counts behind the IDFs: products with a full-text column, their mean
    length in lexemes, and each lexeme's document count."""

    docs: int = 0
    mean_length: float = 1.0
    df: Mapping[str, int] = field(default_factory=dict)

    def word_df(self, word: str) -> int:
        return max((self.df.get(f, 0) for f in forms(word)), default=0)

    def slot_df(self, alternatives: Sequence[Phrase]) -> int:
        total = 0
        for phrase in alternatives:
            total += min((self.word_df(w) for w in phrase), default=0)
        return min(total, self.docs)

    def idf(self, df: int) -> float:
        """Robertson–Spärck Jones IDF as Lucene uses it: positive for every df."""
        n = max(self.docs, df, 1)
        return math.log(1.0 + (n - df + 0.5) / (df + 0.5))

    @property
    def max_idf(self) -> float:
        """The IDF of a lexeme one product has: the most specific a slot can be."""
        return self.idf(1)


def slot_idfs(slots: Sequence[Sequence[Phrase]], stats: CorpusStats) -> list[float]:
    """One IDF per slot of a lexical query."""
    return [stats.idf(stats.slot_df(alts)) for alts in slots]


def head_slot(slots: int, language: str | None) -> int | None:
    """Which slot holds the query's head noun — what the shopper wants, the other words
    saying which one: Polish noun phrases put it first ("filtr oleju silnikowego",
    "cewka do świec"), English compounds last ("engine oil filter", "brake light bulb").
    When no product has every word, the rarest word alone would decide, and a modifier is
    often rarer than the head ("silnikowego" names engine oil); the head's slot counts
    :data:`HEAD_BOOST` times. None: one slot, or the language is unknown."""
    if slots < 2 or language not in ("pl", "en"):
        return None
    return 0 if language == "pl" else slots - 1


def head_weighted(idfs: Sequence[float], language: str | None) -> list[float]:
    """The BM25 weight of each slot: its IDF (:func:`slot_idfs`), the head noun's
    boosted."""
    weights = list(idfs)
    head = head_slot(len(weights), language)
    if head is not None:
        weights[head] *= HEAD_BOOST
    return weights
