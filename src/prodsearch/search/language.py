"""Which of the catalog's two languages a query is typed in, learned from the catalog.

The catalog names most products twice, in English (``name``) and in Polish
(``polish_name``). Those pairs are a labelled corpus of exactly this domain's words: the
guesser counts character trigrams of the *folded* names (lower case, diacritics removed, so
a Polish query typed without them is still Polish) per language and scores a query by the
summed log-likelihood ratio of its trigrams. Vehicle names, brands and part numbers occur
in both names of a pair and cancel out. A query with no telling trigram (a part number, a
brand alone) has no language.

Used to show each result's title in the query's language.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable

from prodsearch.catalog.lexical import fold

MIN_EVIDENCE = 2.0  # |summed log-likelihood ratio| needed to name a language
_WORD = re.compile(r"[a-z]+")


def _trigrams(text: str) -> list[str]:
    out: list[str] = []
    for word in _WORD.findall(fold(text)):
        padded = f" {word} "
        out.extend(padded[i : i + 3] for i in range(len(padded) - 2))
    return out


class LanguageGuess:
    """Polish or English by character trigrams of the catalog's own name pairs."""

    def __init__(self, pairs: Iterable[tuple[str, str]] = ()) -> None:
        english: Counter[str] = Counter()
        polish: Counter[str] = Counter()
        for en, pl in pairs:
            english.update(_trigrams(en))
            polish.update(_trigrams(pl))
        vocabulary = set(english) | set(polish)
        en_total = sum(english.values()) + len(vocabulary)
        pl_total = sum(polish.values()) + len(vocabulary)
        # log P(trigram | pl) / P(trigram | en), add-one smoothed
        self.ratio = {
            t: math.log((polish[t] + 1) / pl_total) - math.log((english[t] + 1) / en_total)
            for t in vocabulary
        }

    def __bool__(self) -> bool:
        return bool(self.ratio)

    def score(self, text: str) -> float:
        """Evidence for Polish (positive) or English (negative)."""
        return sum(self.ratio.get(t, 0.0) for t in _trigrams(text))

    def guess(self, text: str) -> str | None:
        """``"pl"``, ``"en"`` or None (no model, or too little evidence either way)."""
        if not self.ratio:
            return None
        s = self.score(text)
        if s >= MIN_EVIDENCE:
            return "pl"
        if s <= -MIN_EVIDENCE:
            return "en"
        return None
