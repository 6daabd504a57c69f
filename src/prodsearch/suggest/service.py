"""Completions for what a shopper has typed so far (``GET /suggest``): phrase or word
starts first (folded: "sprezy" finds "sprężyna"), then, when too few, phrases like the
text (typos: "klocki hamulcowr"), each with the number of products it finds."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import psycopg

from prodsearch.errors import SearchError
from prodsearch.search.results import clean_text
from prodsearch.suggest import phrases
from prodsearch.suggest import sql as suggest_sql

MAX_PREFIX_CHARS = 100
MAX_SUGGESTIONS = 20


@dataclass(frozen=True)
class Completion:
    text: str
    kind: str
    lang: str | None
    products: int

    def as_dict(self) -> dict[str, Any]:
        return {"text": self.text, "kind": self.kind, "lang": self.lang, "products": self.products}


@dataclass(frozen=True)
class Suggestions:
    query: str
    completions: list[Completion]
    corrected: bool  # found by similarity (a typo), not by prefix
    execution_time_ms: float

    def as_dict(self) -> dict[str, Any]:
        return {
            "query": self.query,
            "suggestions": [c.as_dict() for c in self.completions],
            "corrected": self.corrected,
            "execution_time_ms": self.execution_time_ms,
        }


def _like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def check(prefix: Any, limit: Any) -> str:
    if not isinstance(prefix, str):
        raise SearchError("q must be a string")
    text = clean_text(prefix)
    if len(text) > MAX_PREFIX_CHARS:
        raise SearchError(f"q is longer than {MAX_PREFIX_CHARS} characters")
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_SUGGESTIONS:
        raise SearchError(f"limit must be an integer from 1 to {MAX_SUGGESTIONS}")
    return text


async def suggest(conn: psycopg.AsyncConnection[Any], prefix: str, limit: int = 8) -> Suggestions:
    started = time.perf_counter()
    text = check(prefix, limit)
    folded = phrases.folded(text)
    if not folded:  # only spaces so far: nothing to complete
        return Suggestions(text, [], False, round((time.perf_counter() - started) * 1000, 3))
    like = _like(folded)
    cur = await conn.execute(
        suggest_sql.by_prefix(), {"start": like + "%", "word": "% " + like + "%", "n": limit}
    )
    rows = await cur.fetchall()
    corrected = False
    if not rows and len(folded) >= 3:
        async with conn.transaction():
            await conn.execute(suggest_sql.LOCAL_INDEX_ONLY)
            cur = await conn.execute(suggest_sql.by_similarity(), {"q": folded, "n": limit})
            rows = await cur.fetchall()
        corrected = bool(rows)
    return Suggestions(
        text,
        [Completion(r[0], r[1], r[2], int(r[3])) for r in rows],
        corrected,
        round((time.perf_counter() - started) * 1000, 3),
    )
