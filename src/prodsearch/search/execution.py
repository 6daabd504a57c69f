"""Executing a planned search: its SQL, run and checked.

:class:`Statements` composes each statement once per request shape and keeps it as bytes.
:class:`Executor` runs one (a local ``hnsw.ef_search`` when the request needs another),
reads its rows as :class:`~prodsearch.search.rows.Candidate` s, and checks the result: an
index walk that provably missed the nearest products is run again wider, then exactly; a
filtered walk that stopped at pgvector's scan limit is run exactly at once.
"""

from __future__ import annotations

import time
import weakref
from collections.abc import Callable
from contextlib import nullcontext
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import class_row

from prodsearch.catalog.source import Source
from prodsearch.search import queries
from prodsearch.search.cache import LRUCache
from prodsearch.search.queries import SqlParams
from prodsearch.search.request import Request
from prodsearch.search.results import MAX_EF, FacetCount, FacetScope
from prodsearch.search.rows import Candidate, DisplayColumn, Found
from prodsearch.search.understanding import QueryUnderstanding

# a statement for a request: composed from it when its shape is first seen
Build = Callable[[Request], sql.Composable]


async def fetch(
    conn: psycopg.AsyncConnection[Any], statement: sql.Composed | bytes, params: SqlParams
) -> list[tuple[Any, ...]]:
    """Every row of one statement planned for these values (unprepared: a filter's
    values decide its plan)."""
    cur = await conn.execute(statement, params, prepare=False)
    return await cur.fetchall()


class Statements:
    """Composed statements by kind and request shape (strategy, filter clause, mask),
    kept as bytes: composing one costs ~0.2 ms of Python per request. The values are
    parameters, never part of the text."""

    def __init__(self) -> None:
        self.clear()

    def clear(self) -> None:
        """Forget every statement (they hold the distance expression of an index type)."""
        self._data: LRUCache[bytes] = LRUCache(512)

    def get(self, kind: str, req: Request, build: Callable[[], sql.Composable]) -> bytes:
        key = f"{kind}|{req.strategy}|{req.where.as_string() if req.fparams else ''}"
        if req.mask_names:
            key += "|" + req.mask.as_string()
        text = self._data.get(key)
        if text is None:
            text = build().as_string().encode()
            self._data.put(key, text)
        return text

    def __len__(self) -> int:
        return len(self._data)

    def texts(self) -> list[bytes]:
        return self._data.values()


class Executor:
    """Runs planned requests against one source on autocommit connections."""

    def __init__(
        self,
        source: Source,
        default_ef: int,
        understanding: QueryUnderstanding,
        statements: Statements,
        facet_keys: list[DisplayColumn],
    ) -> None:
        self.source = source
        self.default_ef = default_ef
        self.understanding = understanding
        self.statements = statements
        self.facet_keys = facet_keys
        self._configured: weakref.WeakSet[psycopg.AsyncConnection[Any]] = weakref.WeakSet()

    async def configure(self, conn: psycopg.AsyncConnection[Any]) -> None:
        """Session settings, once per connection: the default ``hnsw.ef_search``, iterative
        index scans (a filtered query keeps scanning until it has ``k`` rows) and serial
        execution. Searches read on autocommit connections: a read leaves no transaction
        open, and the only transactions are those scoping a local setting."""
        if conn in self._configured:
            return
        if not conn.autocommit:
            raise ValueError("the search service needs an autocommit connection")
        await conn.execute(queries.SESSION_SETTINGS, (str(self.default_ef),))
        self._configured.add(conn)

    async def run(
        self,
        conn: psycopg.AsyncConnection[Any],
        query: bytes,
        params: SqlParams,
        req: Request,
        ef: int | None = None,
    ) -> Found:
        """One round trip; a transaction with a local ``hnsw.ef_search`` only when the
        request asks for another one (or ``ef``), or a deep page needs more candidates than
        the default. Unfiltered queries are prepared (planned once per connection);
        filtered ones are planned for their values every time, since a filter's
        selectivity decides the plan."""
        ef = ef or req.opts.ef_search or self.default_ef
        ef = min(max(ef, requested_k(params)), MAX_EF)
        local = ef != self.default_ef
        started = time.perf_counter()
        async with (
            conn.transaction() if local else nullcontext(),
            conn.cursor(row_factory=class_row(Candidate)) as cur,
        ):
            if local:
                await cur.execute(queries.LOCAL_EF_SEARCH, (str(ef),))
            await cur.execute(query, params, prepare=False if req.fparams else None)
            rows = await cur.fetchall()
        return Found(rows, time.perf_counter() - started)

    async def search(
        self,
        conn: psycopg.AsyncConnection[Any],
        kind: str,
        req: Request,
        params: SqlParams,
        build: Build,
        vector: Any,
        exact_distance: sql.Composable,
        exclude: int = -1,
    ) -> Found:
        """Run the ``kind`` statement ``build`` composes for ``req``; when the index
        provably missed (:meth:`missed`), again with the widest candidate list, and exactly
        should that miss too; exactly at once when a filtered walk stopped short
        (:meth:`stopped_short`). ``req`` records what ran. Rows and the SQL's seconds."""
        statement = self.statements.get(kind, req, lambda: build(req))
        found = await self.run(conn, statement, params, req)
        if await self.stopped_short(conn, req, found.rows, requested_k(params), exclude):
            req.widened = True  # the walk hit its scan limit: score every match instead
        elif not self.missed(req, found.rows, vector, exclude):
            return found
        else:
            req.widened = True
            wider = await self.run(conn, statement, params, req, ef=MAX_EF)
            found = Found(wider.rows, found.seconds + wider.seconds)
            if not self.missed(req, found.rows, vector, exclude):
                return found
        req.go_exact(exact_distance)
        statement = self.statements.get(kind, req, lambda: build(req))
        exact = await self.run(conn, statement, params, req)
        return Found(exact.rows, found.seconds + exact.seconds)

    def missed(self, req: Request, rows: list[Candidate], vector: Any, exclude: int = -1) -> bool:
        """Whether an unfiltered index search provably missed the nearest products: a probe
        product is closer than its best result (:mod:`prodsearch.search.probes`)."""
        if req.fparams or req.strategy != "index" or vector is None:
            return False
        best = min((float(r.distance) for r in rows if r.distance is not None), default=None)
        return self.understanding.probes.missed(vector, best, exclude)

    async def stopped_short(
        self,
        conn: psycopg.AsyncConnection[Any],
        req: Request,
        rows: list[Candidate],
        k: int,
        exclude: int,
    ) -> bool:
        """Whether a filtered index walk ended at pgvector's scan limit: fewer than ``k``
        neighbours came back although more embedded products pass the filter (counted,
        up to ``k``, only when the page came back short)."""
        if req.plan is None or req.strategy != "index":
            return False
        found = sum(1 for r in rows if r.semantic_rank is not None)
        if found >= k:
            return False
        statement = self.statements.get(
            "matches", req, lambda: queries.count_matches(self.source, req.where)
        )
        counted = await fetch(conn, statement, {**req.fparams, "k": k, "exclude": exclude})
        return bool(counted) and int(counted[0][0]) > found

    async def facets_of_matches(
        self, conn: psycopg.AsyncConnection[Any], req: Request
    ) -> tuple[dict[str, list[FacetCount]], FacetScope]:
        """Facet counts over every product a filter matches: for a filter the planner
        expects few products for (the exact path), one pass over the covering indexes."""
        statement = self.statements.get(
            "facets", req, lambda: queries.facet_totals(self.source, req.where, self.facet_keys)
        )
        rows = await fetch(conn, statement, req.fparams)
        counts: dict[str, list[FacetCount]] = {key: [] for key in self.facet_keys}
        total = 0
        for key, value, count in rows:
            if key is None:
                total = int(count)
            elif value is not None:
                counts[key].append(FacetCount(str(value), int(count)))
        for values in counts.values():
            values.sort(key=lambda f: (-f.count, f.value))
        return counts, FacetScope("all_matches", total)


def requested_k(params: SqlParams) -> int:
    """The candidates a statement asks for (its ``k`` parameter)."""
    k = params["k"]
    assert isinstance(k, int)
    return k
