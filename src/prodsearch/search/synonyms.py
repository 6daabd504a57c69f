"""Trade synonyms: phrase groups that mean the same part, used to expand queries.

File format (UTF-8 text, ``#`` comments): one group per line, either
``a, b, c`` (all equivalent) or ``a, b => c, d`` (a query with ``a`` or ``b`` also looks
for ``c`` and ``d``, not the other way). The first phrase of a group (of the right
side, for a rule) is its *canonical* name: the full-text leg looks for every phrase,
the semantic leg adds the canonical one to the text it embeds. Phrases are analysed
like every other text (folded, stemmed: see :mod:`prodsearch.catalog.lexical`), so
case, diacritics and inflection do not matter. The demo domain's set ships with the package;
``PRODSEARCH_SYNONYMS=path`` replaces it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import NamedTuple

from prodsearch.catalog.lexical import forms, tokens
from prodsearch.errors import ConfigError

Phrase = tuple[str, ...]
MAX_PHRASE = 5


def _key(phrase: Phrase) -> tuple[frozenset[str], ...]:
    return tuple(frozenset(forms(t)) for t in phrase)


class Match(NamedTuple):
    length: int  # words of the query the phrase covers (0: no rule matched)
    alternatives: list[Phrase]
    canonical: Phrase


@dataclass
class Synonyms:
    """Rules ``phrase -> alternatives``, looked up by the phrase's first word."""

    rules: dict[str, list[tuple[Phrase, list[Phrase], Phrase]]] = field(default_factory=dict)
    count: int = 0

    def add(self, sources: list[Phrase], targets: list[Phrase]) -> None:
        canonical = targets[0] if targets else ()
        for src in sources:
            alts = [t for t in targets if t != src]
            if not src or not alts:
                continue
            for lexeme in forms(src[0]):
                self.rules.setdefault(lexeme, []).append((src, alts, canonical))
            self.count += 1

    def match(self, words: list[str], start: int) -> Match:
        """The longest rule whose phrase starts at ``words[start]``."""
        best = Match(0, [], ())
        for lexeme in forms(words[start]):
            for src, alts, canonical in self.rules.get(lexeme, ()):
                if len(src) <= best.length or start + len(src) > len(words):
                    continue
                window = words[start : start + len(src)]
                if all(q & p for q, p in zip(_key(tuple(window)), _key(src), strict=True)):
                    best = Match(len(src), alts, canonical)
        return best


def parse(text: str, origin: str = "synonyms") -> Synonyms:
    syn = Synonyms()
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        left, arrow, right = line.partition("=>")
        sources = [tuple(tokens(p)) for p in left.split(",") if p.strip()]
        targets = [tuple(tokens(p)) for p in right.split(",") if p.strip()] if arrow else sources
        if (arrow and not targets) or any(len(p) > MAX_PHRASE for p in sources + targets):
            raise ConfigError(
                f"{origin} line {number}: {raw.strip()!r} — expected 'a, b, c' or 'a, b => c' "
                f"with phrases of at most {MAX_PHRASE} words"
            )
        syn.add([p for p in sources if p], [p for p in targets if p])
    return syn


def load(path: str | Path | None = None) -> Synonyms:
    """The synonyms file named by ``PRODSEARCH_SYNONYMS``, or the shipped demo set."""
    if path:
        file = Path(path).expanduser()
        try:
            return parse(file.read_text("utf-8"), str(file))
        except OSError as exc:
            raise ConfigError(f"cannot read PRODSEARCH_SYNONYMS={path}: {exc}") from exc
    shipped = resources.files("prodsearch.search") / "data" / "synonyms.txt"
    return parse(shipped.read_text("utf-8"), "shipped synonyms")
