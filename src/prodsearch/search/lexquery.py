"""A shopper's query as a full-text query: the same analysis as the documents, plus
synonym expansion and typo correction.

The query's words (folded, stemmed: :mod:`prodsearch.catalog.lexical`) become *slots*.
A slot is one word or one synonym phrase; it holds alternatives (``wishbone`` →
``wishbone | control & arm | wahacz``), each alternative a sequence of words, each word the
OR of its lexemes. The strict query requires every slot (AND); the loose one any slot (OR),
used when the strict one matches nothing.

A word the catalog never uses (not in the term vocabulary) is replaced by the closest term
the caller found for it (trigram similarity, in SQL), or dropped when there is none, so
one unknown word ("cheap", a typo) does not empty an AND query.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from prodsearch.catalog.lexical import forms, tokens, tsquery_group
from prodsearch.search.synonyms import Phrase, Synonyms

Known = Callable[[str], bool]


@dataclass
class LexicalQuery:
    words: list[str]
    slots: list[list[Phrase]] = field(default_factory=list)
    corrected: dict[str, str] = field(default_factory=dict)
    dropped: list[str] = field(default_factory=list)
    expanded: list[str] = field(default_factory=list)  # synonym phrases added
    canonical: list[str] = field(default_factory=list)  # canonical names of matched groups

    @property
    def strict(self) -> str:
        """tsquery text: every slot must match (empty when nothing is searchable)."""
        return " & ".join(tsquery_group(alts) for alts in self.slots)

    @property
    def loose(self) -> str:
        """tsquery text: any slot may match."""
        return " | ".join(tsquery_group(alts) for alts in self.slots)

    def slot_queries(self, weight: str) -> list[str]:
        """One tsquery text per slot, matching only the field of ``weight`` (BM25F)."""
        return [tsquery_group(alts, weight) for alts in self.slots]

    def semantic_text(self, original: str) -> str:
        """What the semantic leg embeds: the query (its words with typos corrected, when
        any were) followed by the canonical names of the synonym groups it names, so
        "wishbone" also means "control arm" to an encoder that never saw the trade word,
        and "klocki hamulcowe" also means "brake pads"."""
        base = original
        if self.corrected:
            base = " ".join(self.corrected.get(w, w) for w in self.words)
        return " ".join([base, *self.canonical])


def unknown_words(text: str, synonyms: Synonyms, known: Known) -> list[str]:
    """Words of ``text`` that are neither in the vocabulary nor part of a synonym phrase:
    the candidates for typo correction (and, codes included, for a word the catalog has
    gained since the vocabulary was loaded)."""
    words = tokens(text)
    out: list[str] = []
    i = 0
    while i < len(words):
        length = synonyms.match(words, i).length
        if length:
            i += length
            continue
        # a code or size is no typo, but may be new to the catalog since the vocabulary
        # was loaded: looked up too (queries.closest_terms matches it only exactly)
        if not known(words[i]):
            out.append(words[i])
        i += 1
    return out


def analyze(
    text: str,
    synonyms: Synonyms,
    known: Known | None = None,
    corrections: Mapping[str, str] | None = None,
) -> LexicalQuery:
    """Slots for ``text``. ``known`` tells whether a lexeme is in the index (None: assume
    all are); ``corrections`` maps unknown words to their closest indexed term."""
    corrections = corrections or {}
    is_known: Known = known or (lambda _w: True)
    query = LexicalQuery(tokens(text))
    words = query.words
    i = 0
    while i < len(words):
        length, alts, canonical = synonyms.match(words, i)
        if length:
            phrase = tuple(words[i : i + length])
            options = [p for p in [phrase, *alts] if all(_any_known(w, is_known) for w in p)]
            if options:
                query.slots.append(options)
                query.expanded.extend(" ".join(p) for p in options if p != phrase)
            else:
                query.dropped.extend(phrase)
            if canonical and canonical != phrase:
                query.canonical.append(" ".join(canonical))
            i += length
            continue
        word = words[i]
        if _any_known(word, is_known):
            query.slots.append([(word,)])
        elif word in corrections:
            query.corrected[word] = corrections[word]
            query.slots.append([(corrections[word],)])
        else:
            query.dropped.append(word)
        i += 1
    return query


def _any_known(word: str, known: Known) -> bool:
    return any(known(f) for f in forms(word))
