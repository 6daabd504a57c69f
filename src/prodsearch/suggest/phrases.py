"""The completions a catalog offers: its product types (in English and in Polish, read off
the product names), brands and vehicles, and their combinations, each with the number of
live products it finds.

A product type in a language is the longest run of leading words that most names of a
category share once the brand is taken out ("Klocki hamulcowe przednie Bosch do VW Golf
VII" and "Klocki hamulcowe tylne ATE do …" share "klocki hamulcowe"); a catalog whose
names follow no such pattern still offers its category values, brands and vehicles.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from prodsearch.catalog.lexical import STOPWORDS, fold, tokens

SHARE = 0.6  # of a category's names that must share the leading words
MAX_TYPE_WORDS = 4


@dataclass(frozen=True)
class Suggestion:
    phrase: str
    kind: str  # type | brand | vehicle | type_brand | type_vehicle
    lang: str | None
    products: int

    @property
    def folded(self) -> str:
        return folded(self.phrase)


def folded(text: str) -> str:
    """What a completion (and a typed prefix) is matched as: folded, single-spaced."""
    return " ".join(fold(text).split())


@dataclass(frozen=True)
class CategorySample:
    """A few names of one category's products, in both languages, with their brands."""

    category: str
    names: list[tuple[str | None, str | None, str | None]]  # (name, polish name, brand)


def _words_without(name: str, brand: str | None) -> list[str]:
    """The name's leading words without the brand, up to the first that holds a digit (a
    size, a grade: "5W-30") or a function word ("for", "do": the vehicle follows)."""
    words = name.split()
    if brand:
        drop = {fold(w) for w in brand.split()}
        words = [w for w in words if fold(w) not in drop]
    out = []
    for w in words:
        if any(ch.isdigit() for ch in w) or fold(w) in STOPWORDS:
            break
        out.append(w)
    return out


def type_phrase(names: Iterable[str], brands: Iterable[str | None]) -> str | None:
    """The leading words (up to :data:`MAX_TYPE_WORDS`) that :data:`SHARE` of ``names``
    share once their brands are removed; None when too few share even one."""
    split = [_words_without(n, b) for n, b in zip(names, brands, strict=True) if n]
    if not split:
        return None
    best = None
    for length in range(1, MAX_TYPE_WORDS + 1):
        heads = Counter(tuple(fold(w) for w in ws[:length]) for ws in split if len(ws) >= length)
        if not heads:
            break
        head, count = heads.most_common(1)[0]
        if count < SHARE * len(split):
            break
        # as written in the first name that has it, lower case (a common noun)
        for ws in split:
            if tuple(fold(w) for w in ws[:length]) == head:
                best = " ".join(ws[:length]).lower()
                break
    return best


def build(
    samples: Iterable[CategorySample],
    categories: Mapping[str, int],
    brands: Mapping[str, int],
    vehicles: Mapping[str, int],
    category_brands: Mapping[tuple[str, str], int],
    category_vehicles: Mapping[tuple[str, str], int],
) -> list[Suggestion]:
    """Every completion, one per folded phrase (the one finding most products kept)."""
    types: dict[str, list[tuple[str, str]]] = {}  # category -> [(phrase, lang)]
    for sample in samples:
        found = [(sample.category.lower(), "en")]
        en = type_phrase([n[0] or "" for n in sample.names], [n[2] for n in sample.names])
        pl = type_phrase([n[1] or "" for n in sample.names], [n[2] for n in sample.names])
        found += [(p, lang) for p, lang in ((en, "en"), (pl, "pl")) if p]
        types[sample.category] = found
    out: list[Suggestion] = []
    for category, count in categories.items():
        for phrase, lang in types.get(category, [(category.lower(), "en")]):
            out.append(Suggestion(phrase, "type", lang, count))
    out += [Suggestion(b, "brand", None, n) for b, n in brands.items()]
    out += [Suggestion(v, "vehicle", None, n) for v, n in vehicles.items()]
    for (category, brand), n in category_brands.items():
        for phrase, lang in types.get(category, []):
            out.append(Suggestion(f"{phrase} {brand}", "type_brand", lang, n))
    for (category, vehicle), n in category_vehicles.items():
        for phrase, lang in types.get(category, []):
            joiner = "do" if lang == "pl" else "for"
            out.append(Suggestion(f"{phrase} {joiner} {vehicle}", "type_vehicle", lang, n))
    # one per stemmed phrase: "wiper blade Bosch" and "wiper blades Bosch" are one
    unique: dict[str, Suggestion] = {}
    for s in sorted(out, key=lambda s: (-s.products, len(s.phrase))):
        key = " ".join(t[:4] for t in tokens(s.phrase))
        if s.folded and key and key not in unique:
            unique[key] = s
    return list(unique.values())
