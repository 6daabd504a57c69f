"""Which words of a result match the query: character offsets into the title and into a
short description snippet, so a client marks them up itself (the text stays text: a name
holding ``<script>`` or ``&`` is never markup). Words match as the full-text leg matches
them: folded, and by either language's stem (``tarcze`` marks ``Tarcza``)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from prodsearch.catalog.lexical import STOPWORDS, forms, tokens
from prodsearch.jsonvalue import JsonObject

SNIPPET_CHARS = 160
_WORD = re.compile(r"[^\W_]+")


@dataclass(frozen=True, slots=True)
class Highlight:
    title: list[tuple[int, int]]  # [start, end) of each matched word of the title
    snippet: str | None = None  # a part of the description, around its first match
    snippet_matches: list[tuple[int, int]] | None = None

    def as_dict(self) -> JsonObject:
        out: JsonObject = {"title": [list(m) for m in self.title]}
        if self.snippet is not None:
            out["snippet"] = self.snippet
            out["snippet_matches"] = [list(m) for m in self.snippet_matches or []]
        return out


def query_forms(query: str) -> frozenset[str]:
    """The lexemes a query's words stand for."""
    return frozenset(f for tok in tokens(query) for f in forms(tok))


def matches(text: str, wanted: frozenset[str]) -> list[tuple[int, int]]:
    """Spans of the words of ``text`` one of whose lexemes the query holds."""
    out = []
    for m in _WORD.finditer(text):
        for tok in tokens(m.group()):
            if tok not in STOPWORDS and any(f in wanted for f in forms(tok)):
                out.append((m.start(), m.end()))
                break
    return out


def snippet(text: str, wanted: frozenset[str]) -> tuple[str, list[tuple[int, int]]]:
    """Up to :data:`SNIPPET_CHARS` of ``text`` around its first matched word (cut at word
    boundaries, "…" where cut), with the matches inside it."""
    found = matches(text, wanted)
    start = 0
    if found and found[0][1] > SNIPPET_CHARS:
        start = max(0, found[0][0] - SNIPPET_CHARS // 4)
        while start > 0 and not text[start - 1].isspace():
            start += 1
    end = min(len(text), start + SNIPPET_CHARS)
    while end < len(text) and end > start and not text[end - 1].isspace():
        end -= 1
    if end <= start:
        end = min(len(text), start + SNIPPET_CHARS)
    lead = "…" if start > 0 else ""
    tail = "…" if end < len(text) else ""
    part = text[start:end].strip()
    shift = len(lead) - start - (len(text[start:end]) - len(text[start:end].lstrip()))
    inside = [(a + shift, b + shift) for a, b in found if a >= start and b <= start + len(part)]
    return lead + part + tail, inside


def highlight(
    title: str | None, description: str | None, wanted: frozenset[str]
) -> Highlight | None:
    if not wanted:
        return None
    spans = matches(title, wanted) if title else []
    if not description:
        return Highlight(spans)
    part, inside = snippet(" ".join(description.split()), wanted)
    return Highlight(spans, part, inside)
