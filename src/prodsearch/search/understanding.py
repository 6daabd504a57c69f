"""What a query means before any SQL: its vector, its full-text form (synonyms, typo
corrections against the indexed terms) and the vehicles it names."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import psycopg

from prodsearch.catalog.source import Source
from prodsearch.config import Settings
from prodsearch.embedding.encoder import Encoder
from prodsearch.embedding.querymap import QueryMap
from prodsearch.search import queries
from prodsearch.search.bm25 import CorpusStats
from prodsearch.search.cache import LRUCache
from prodsearch.search.constraints import CatalogVocabulary, load_position_words
from prodsearch.search.lexquery import LexicalQuery, analyze, unknown_words
from prodsearch.search.probes import SAMPLE, TrapProbes, as_array
from prodsearch.search.synonyms import Synonyms
from prodsearch.search.vehicles import VehicleIndex

VOCABULARY_TTL_S = 300.0
MISS_TTL_S = 10.0  # an unknown word without a correction is looked up again after this
MIN_SIMILARITY = 0.45  # trigram similarity for a typo correction


class QueryVectors:
    """Query text → vector: the encoder, then the Polish→English map when one is loaded;
    LRU-cached by lower-cased text."""

    def __init__(self, encoder: Encoder, query_map: QueryMap | None, cache_size: int) -> None:
        self.encoder = encoder
        self.query_map = query_map
        self.cache: LRUCache[np.ndarray] = LRUCache(cache_size)
        # an int8 query embeds in 1-2 ms on one thread: cheaper on the event loop's own
        # thread than handed to a worker thread (which must be woken first)
        self.inline = encoder.mode == "int8"

    def vector(self, text: str) -> np.ndarray:
        """The query vector of ``text`` as a search uses it (uncached): encoded, then
        mapped; what benches and ``verify`` compare against exact search."""
        vec = self.encoder.encode([text])[0]
        return self.query_map.apply(vec) if self.query_map is not None else vec

    async def embed(self, text: str) -> QueryVector:
        """The vector, the seconds it took, and whether it came from the cache."""
        key = text.lower()
        vec = self.cache.get(key)
        if vec is not None:
            return QueryVector(vec, 0.0, True)
        started = time.perf_counter()
        if self.inline:
            vec = self.vector(text)
        else:
            vec = await asyncio.to_thread(self.vector, text)
        elapsed = time.perf_counter() - started
        self.cache.put(key, vec)
        return QueryVector(vec, elapsed, False)


@dataclass(frozen=True, slots=True)
class QueryVector:
    """A query's vector, the seconds its encoding took (0 from the cache), and whether it
    came from the cache."""

    vector: np.ndarray
    seconds: float
    cached: bool


@dataclass(frozen=True, slots=True)
class QueryAnalysis:
    """What a search knows of its query text: its lexical form and its vector."""

    lexical: LexicalQuery
    embedded: QueryVector


@dataclass(frozen=True)
class ConstraintColumns:
    """The source columns that understood constraints refer to, and the side words file
    (None: the shipped one). Their defaults are the settings': :meth:`from_settings`."""

    brand: str
    engine: str
    position: str
    price: str
    currency: str
    position_words: str | None

    @classmethod
    def from_settings(cls, settings: Settings) -> ConstraintColumns:
        return cls(
            brand=settings.brand_column,
            engine=settings.engine_column,
            position=settings.position_column,
            price=settings.price_column,
            currency=settings.currency_column,
            position_words=settings.position_words,
        )


class QueryUnderstanding:
    """The catalog's vocabulary (indexed terms, vehicles, constraint values), reloaded
    every few minutes as the catalog changes, and what a query means against it."""

    def __init__(
        self,
        source: Source,
        vehicle_column: str,
        synonyms: Synonyms,
        columns: ConstraintColumns,
    ) -> None:
        self.source = source
        self.vehicle_column = vehicle_column
        self.synonyms = synonyms
        self.columns = columns
        self.position_words = load_position_words(self.columns.position_words)
        self.catalog = CatalogVocabulary(position_words=self.position_words)
        self.vehicles = VehicleIndex([])
        self.terms: frozenset[str] = frozenset()
        self.stats = CorpusStats()  # document counts for BM25
        self.probes = TrapProbes()  # sample vectors: did a graph search go astray?
        # unknown word -> (its closest indexed term, "" when it has none; when looked up):
        # a miss is asked again after MISS_TTL_S, since the catalog may have gained the
        # word since (a new brand, a new part number)
        self.corrections: LRUCache[tuple[str, float]] = LRUCache(4096)
        self._loaded = 0.0

    async def load(self, conn: psycopg.AsyncConnection[Any]) -> None:
        cur = await conn.execute(queries.known_terms())
        df = {term: int(ndoc) for term, ndoc in await cur.fetchall()}
        self.terms = frozenset(df)
        cur = await conn.execute(queries.corpus_size())
        row = await cur.fetchone()
        docs, mean_length = (row[0], row[1]) if row else (0, None)
        self.stats = CorpusStats(int(docs or 0), float(mean_length or 1.0), df)
        step = max(1, self.stats.docs // SAMPLE)
        cur = await conn.execute(queries.probe_vectors(self.source), {"step": step, "n": SAMPLE})
        rows = await cur.fetchall()
        self.probes = TrapProbes(
            [int(r[0]) for r in rows],
            np.stack([as_array(r[1]) for r in rows]) if rows else None,
            [r[2] for r in rows],
        )
        names = queries.vehicle_names(self.source, self.vehicle_column)
        if names is not None:
            cur = await conn.execute(names)
            self.vehicles = VehicleIndex(r[0] for r in await cur.fetchall())
        self.catalog = await self._catalog_vocabulary(conn, df)
        self._loaded = time.monotonic()

    async def _catalog_vocabulary(
        self, conn: psycopg.AsyncConnection[Any], df: dict[str, int]
    ) -> CatalogVocabulary:
        """The brands, engines, sides and currency the catalog holds (per live product)."""
        counts: dict[str, dict[str, int]] = {}
        cols = self.columns
        for column in (cols.brand, cols.engine, cols.position, cols.currency):
            statement = queries.value_counts(self.source, column)
            values: dict[str, int] = {}
            if statement is not None:
                cur = await conn.execute(statement)
                values = {str(v): int(n) for v, n in await cur.fetchall()}
            counts[column] = values
        currencies = counts[cols.currency]
        return CatalogVocabulary(
            brands=counts[cols.brand],
            engines=list(counts[cols.engine]),
            position_values=list(counts[cols.position]),
            currency=max(currencies, key=currencies.__getitem__) if currencies else None,
            position_words=self.position_words,
            word_products=lambda w: df.get(w, 0),
        )

    async def refresh(self, conn: psycopg.AsyncConnection[Any]) -> None:
        if time.monotonic() - self._loaded > VOCABULARY_TTL_S:
            await self.load(conn)

    def unknown(self, text: str) -> list[str]:
        """Words of ``text`` the index does not know (typo candidates); none without a
        vocabulary."""
        if not self.terms:
            return []
        return unknown_words(text, self.synonyms, self.terms.__contains__)

    def analyze(self, text: str, unknown: list[str]) -> LexicalQuery:
        """The full-text query for ``text``: synonyms expanded, the ``unknown`` words
        replaced by the corrections found so far (or dropped)."""
        known: Callable[[str], bool] | None = self.terms.__contains__ if self.terms else None
        corrections = {w: term for w in unknown if (term := self._correction(w))}
        return analyze(text, self.synonyms, known, corrections)

    def _correction(self, word: str) -> str | None:
        """The remembered correction of ``word``: a term, "" (none), or None (ask)."""
        found = self.corrections.get(word)
        if found is None:
            return None
        term, at = found
        if not term and time.monotonic() - at > MISS_TTL_S:
            return None
        return term

    async def look_up(self, conn: psycopg.AsyncConnection[Any], words: list[str]) -> None:
        """Find and remember the closest indexed term of each word (one statement)."""
        cur = await conn.execute(
            queries.closest_terms(), {"words": words, "min_sim": MIN_SIMILARITY}
        )
        now = time.monotonic()
        for word, term in await cur.fetchall():
            self.corrections.put(word, (term or "", now))

    async def understand(
        self, conn: psycopg.AsyncConnection[Any], text: str, vectors: QueryVectors
    ) -> QueryAnalysis:
        """The query's analysis and its vector. Words the catalog never uses are looked up
        (trigram similarity, one SQL statement, cached) *while* the encoder embeds the text
        as if none of them were a typo; only when a correction turns up is the corrected
        text embedded again, so the lookup costs no latency in the common case."""
        unknown = self.unknown(text)
        missing = [w for w in unknown if self._correction(w) is None]
        guess = self.analyze(text, unknown)
        if not missing:
            return QueryAnalysis(guess, await vectors.embed(guess.semantic_text(text)))
        # the lookup first: its statement is on its way before an inline encode holds the
        # event loop
        _, first = await asyncio.gather(
            self.look_up(conn, missing), vectors.embed(guess.semantic_text(text))
        )
        lexq = self.analyze(text, unknown)
        if lexq.semantic_text(text) == guess.semantic_text(text):
            return QueryAnalysis(lexq, first)
        again = await vectors.embed(lexq.semantic_text(text))
        return QueryAnalysis(lexq, replace(again, seconds=first.seconds + again.seconds))
