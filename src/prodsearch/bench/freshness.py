"""``prodsearch bench freshness``: how soon a catalog change is searchable under
``prodsearch watch``, while search traffic runs.

On the configured (embedded) catalog, with change capture installed and one worker
running (a ``prodsearch watch`` subprocess) and the API served (a ``prodsearch serve``
subprocess):

1. **idle**: search traffic alone (one client, semantic queries) — the baseline p95;
2. **rate phases**: a writer commits mixed changes at each rate (inserts, renames,
   description edits, soft deletes, hard deletes, each its own transaction) for
   ``seconds`` while the search client runs. A change's lag runs from its commit (the
   server's clock right after it) to the moment a poll (every 50 ms, the server's clock)
   sees its embedding written — or removed, for deletes. A deleted product leaves search
   at once whatever the worker does (search joins the live catalog rows); the figure
   for deletes is how long its embedding stays. Every tenth insert or rename is also
   searched for through the API by its new, unique name: ``found`` counts those the
   hybrid search returns in its top 10;
3. **burst**: one transaction renames ``burst`` products (an import); the worker drains
   it. Then the worker is stopped, another ``burst`` products are renamed and a batch
   ``embed`` writes them: the burst's rows/s as a share of ``embed``'s, in the same run.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import random
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

import httpx

from prodsearch.bench import sql as bench_sql
from prodsearch.bench.load import Request, Stop, drive, percentile
from prodsearch.bench.server import LocalServer, child_env
from prodsearch.bench.workload import benchmark_queries
from prodsearch.catalog import sql as catalog_sql
from prodsearch.catalog.source import Source, load_source
from prodsearch.config import Settings
from prodsearch.db import connect, database_url, migrate
from prodsearch.embedding import modes
from prodsearch.embedding.sync import SyncOptions, sync
from prodsearch.watch import capture
from prodsearch.watch import sql as watch_sql

KINDS = ("insert", "rename", "describe", "soft delete", "hard delete")
POLL_S = 0.05


@dataclass
class Lag:
    kind: str
    seconds: float


@dataclass
class PhaseResult:
    name: str
    rate: float  # changes per second asked for (0: idle)
    changes: int = 0
    achieved_rate: float = 0.0
    lag_p50_s: float | None = None
    lag_p95_s: float | None = None
    lag_max_s: float | None = None
    lag_by_kind: dict[str, float] = field(default_factory=dict)  # p95 per kind
    unresolved: int = 0  # changes not seen embedded within the wait
    searched: int = 0  # inserts / renames searched for by their new name
    found: int = 0
    search_requests: int = 0
    search_p50_ms: float = 0.0
    search_p95_ms: float = 0.0


@dataclass
class BurstResult:
    rows: int
    watch_s: float = 0.0
    watch_rows_per_s: float = 0.0
    embed_s: float = 0.0  # the batch embed of the second burst, end to end
    embed_rows_per_s: float = 0.0  # … end to end (plan and search support included)
    embed_pipeline_rows_per_s: float = 0.0  # … in its embed stage alone (encode + write)
    share: float = 0.0  # watch rows/s over embed's embed-stage rows/s (the stricter figure)


@dataclass
class FreshnessBench:
    products: int
    mode: str
    phases: list[PhaseResult] = field(default_factory=list)
    burst: BurstResult | None = None
    search_p95_ratio: dict[str, float] = field(default_factory=dict)  # phase p95 / idle p95

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _search_loop(url: str, stop: Stop, results: Any) -> None:
    """In its own process (no GIL shared with the writer): semantic queries back to back
    on one keep-alive connection until ``stop`` is set; the latencies (ms) of the answered
    ones go to ``results``."""
    queries = benchmark_queries()

    def request(i: int) -> Request:
        return Request(
            "POST", "/search/semantic", {"query": queries[i % len(queries)], "limit": 10}
        )

    results.put(asyncio.run(drive(url, request, 1, stop=stop)).ok_latencies_ms)


class _SearchLoad:
    """One search client, in a process of its own, for the duration of a ``with``."""

    def __init__(self, url: str) -> None:
        ctx = multiprocessing.get_context("spawn")
        self._stop = ctx.Event()
        self._results: Any = ctx.Queue()
        self._proc = ctx.Process(target=_search_loop, args=(url, self._stop, self._results))
        self.latencies: list[float] = []

    def __enter__(self) -> _SearchLoad:
        self._proc.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self.latencies = self._results.get(timeout=60)
        self._proc.join(timeout=30)


@dataclass
class _Pending:
    pid: int
    kind: str
    committed: datetime
    before: datetime | None  # the embedding's updated_at before the change
    name: str | None = None  # the new unique name (insert / rename)


class _Writer:
    """Commits mixed changes at a rate, and watches for their embeddings."""

    def __init__(self, url: str, source: Source, seed: int) -> None:
        self.url, self.source = url, source
        self.rng = random.Random(seed)
        self.conn = connect(url)
        self.ids = bench_sql.live_ids(self.conn, source)
        self.next_id = bench_sql.max_id(self.conn, source) + 1
        self.conn.commit()
        self.serial = 0
        # names unique to this writer (phase and run): a search finds one product
        self.tag = f"{int(time.time() * 1000) % 36**5:05x}{seed}"

    def change(self) -> _Pending:
        kind = self.rng.choice(KINDS)
        conn, src = self.conn, self.source
        self.serial += 1
        name = None
        if kind == "insert":
            pid, self.next_id = self.next_id, self.next_id + 1
            name = f"Fresh{self.tag}n{self.serial:05d} wiper blade"
            bench_sql.clone_product(conn, src, self.rng.choice(self.ids), pid, name)
            self.ids.append(pid)
        else:
            pid = self.ids.pop(self.rng.randrange(len(self.ids)))
            if kind in ("rename", "describe"):
                self.ids.append(pid)
            if kind == "rename":
                name = f"Fresh{self.tag}n{self.serial:05d} brake pad set"
                bench_sql.set_text(conn, src, pid, src.text_columns[0], name)
            elif kind == "describe":
                column = src.text_columns[-1]
                bench_sql.set_text(conn, src, pid, column, f"Revised {self.serial} description")
            elif kind == "soft delete":
                bench_sql.soft_delete(conn, src, pid)
            else:
                bench_sql.hard_delete(conn, src, pid)
        before = bench_sql.embedded_since(conn, [pid]).get(pid)
        conn.commit()
        committed = watch_sql.server_now(conn)
        conn.commit()
        return _Pending(pid, kind, committed, before, name)

    def close(self) -> None:
        self.conn.close()


def _resolved(p: _Pending, stored: dict[int, datetime]) -> bool:
    at = stored.get(p.pid)
    if p.kind in ("soft delete", "hard delete"):
        return at is None
    return at is not None and (p.before is None or at > p.before)


def _phase(
    url: str,
    api: str,
    source: Source,
    rate: float,
    seconds: float,
    seed: int,
    progress: Callable[[str], None],
) -> PhaseResult:
    out = PhaseResult(f"{rate:g}/s", rate)
    writer = _Writer(url, source, seed)
    pending: list[_Pending] = []
    lags: list[Lag] = []
    to_search: list[_Pending] = []
    writer_log: list[_Pending] = []
    poll = connect(url, autocommit=True)
    started = time.monotonic()
    next_change = started
    last_poll = 0.0
    with _SearchLoad(api) as load:
        while True:
            now = time.monotonic()
            if now - started < seconds and now >= next_change:
                pending.append(writer.change())
                writer_log.append(pending[-1])
                out.changes += 1
                next_change += 1.0 / rate
                continue
            if now - last_poll >= POLL_S and pending:
                last_poll = now
                stored = bench_sql.embedded_since(poll, [p.pid for p in pending])
                seen = watch_sql.server_now(poll)
                still = []
                for p in pending:
                    if _resolved(p, stored):
                        lags.append(Lag(p.kind, (seen - p.committed).total_seconds()))
                        if p.name is not None and len(lags) % 10 == 0:
                            to_search.append(p)
                    else:
                        still.append(p)
                pending = still
            if now - started >= seconds and (not pending or now - started > seconds + 60):
                break
            time.sleep(min(0.005, max(0.0, next_change - time.monotonic())))
    out.search_requests = len(load.latencies)
    out.search_p50_ms, out.search_p95_ms = (
        percentile(load.latencies, 50),
        percentile(load.latencies, 95),
    )
    out.achieved_rate = round(out.changes / seconds, 1)
    out.unresolved = len(pending)
    writer.close()
    poll.close()
    _summarise_lags(out, lags)
    # a product changed again later (renamed anew, deleted) is not searched by its old name
    last = {p.pid: p for p in writer_log}
    to_search = [p for p in to_search if last[p.pid] is p]
    out.searched, out.found = len(to_search), _found_by_name(api, to_search)
    progress(
        f"{out.name}: {out.changes} changes, lag p50 {out.lag_p50_s} s, p95 {out.lag_p95_s} s, "
        f"max {out.lag_max_s} s; {out.found}/{out.searched} found by their new name; "
        f"search p95 {out.search_p95_ms} ms"
    )
    return out


def _summarise_lags(out: PhaseResult, lags: list[Lag]) -> None:
    values = [lag.seconds for lag in lags]
    if not values:
        return
    out.lag_p50_s = round(statistics.median(values), 3)
    out.lag_p95_s = percentile(values, 95, 3)
    out.lag_max_s = round(max(values), 3)
    for kind in KINDS:
        mine = [lag.seconds for lag in lags if lag.kind == kind]
        if mine:
            out.lag_by_kind[kind] = percentile(mine, 95, 3)


def _found_by_name(api: str, changes: list[_Pending]) -> int:
    """Inserts and renames that a hybrid search for their new name returns (top 10)."""
    found = 0
    with httpx.Client(base_url=api, timeout=30) as client:
        for p in changes:
            assert p.name is not None
            body = client.post("/search/hybrid", json={"query": p.name, "limit": 10}).json()
            found += p.pid in [r["product_id"] for r in body.get("results", [])]
    return found


def _idle(api: str, seconds: float) -> PhaseResult:
    out = PhaseResult("idle", 0.0)
    with _SearchLoad(api):  # warm-up (caches, first plans), not counted
        time.sleep(min(10.0, seconds / 2))
    with _SearchLoad(api) as load:
        time.sleep(seconds)
    out.search_requests = len(load.latencies)
    out.search_p50_ms, out.search_p95_ms = (
        percentile(load.latencies, 50),
        percentile(load.latencies, 95),
    )
    return out


def _wait_drained(url: str, timeout: float) -> float:
    """Seconds until the queue is empty (the burst drained)."""
    started = time.monotonic()
    with connect(url, autocommit=True) as conn:
        while time.monotonic() - started < timeout:
            queued, _oldest = watch_sql.depth(conn)
            if queued == 0:
                return time.monotonic() - started
            time.sleep(POLL_S)
    raise RuntimeError(f"the burst was not drained within {timeout:.0f} s")


def _burst_ids(url: str, source: Source, n: int, seed: int) -> list[int]:
    with connect(url) as conn:
        ids = bench_sql.live_ids(conn, source)
    return random.Random(seed).sample(ids, min(n, len(ids)))


def run(
    settings: Settings,
    rates: tuple[float, ...] = (10.0, 100.0),
    seconds: float = 60.0,
    burst: int = 10_000,
    idle_s: float = 30.0,
    progress: Callable[[str], None] = lambda _m: None,
) -> FreshnessBench:
    url = database_url(settings)
    with connect(url) as conn:
        migrate(conn)
        source = load_source(conn, settings)
        products = catalog_sql.count_rows(conn, source)
        if not capture.status(conn).installed:
            capture.install(conn, source, settings)
            progress("change capture installed on the catalog")
        mode = modes.in_force(conn, settings).mode
    result = FreshnessBench(products, mode)
    with LocalServer(settings) as server:
        result.phases.append(idle := _idle(server.url, idle_s))
        progress(f"idle: search p50 {idle.search_p50_ms} ms, p95 {idle.search_p95_ms} ms")
        worker = _start_worker(settings, url, progress)
        try:
            _wait_drained(url, 600)  # whatever was pending before the bench
            for n, rate in enumerate(rates):
                result.phases.append(
                    _phase(url, server.url, source, rate, seconds, seed=n, progress=progress)
                )
            if burst:
                result.burst = _burst(url, source, burst, progress)
        finally:
            worker.terminate()
            worker.wait(timeout=60)
    if result.burst is not None:
        result.burst = _embed_burst(settings, url, source, result.burst, progress)
    base = idle.search_p95_ms or 1.0
    result.search_p95_ratio = {
        p.name: round(p.search_p95_ms / base, 2) for p in result.phases if p.rate
    }
    return result


def _start_worker(
    settings: Settings, url: str, progress: Callable[[str], None]
) -> subprocess.Popen[bytes]:
    """`prodsearch watch`, once its start-up reconciliation (the embed plan, for changes
    made before it ran) has finished: the phases measure the steady state."""
    with connect(url, autocommit=True) as conn:
        since = watch_sql.server_now(conn)
        proc = subprocess.Popen(
            [sys.executable, "-m", "prodsearch", "watch"],
            env=child_env(settings),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        started = time.monotonic()
        while watch_sql.reconciled_since(conn, since) == 0:
            if proc.poll() is not None:
                raise RuntimeError("prodsearch watch exited; see HOME/logs/watch.log")
            if time.monotonic() - started > 900:
                raise RuntimeError("prodsearch watch did not finish its start-up in 900 s")
            time.sleep(0.2)
    progress(f"worker ready after {time.monotonic() - started:.1f} s (start-up reconciliation)")
    return proc


def _burst(url: str, source: Source, n: int, progress: Callable[[str], None]) -> BurstResult:
    """One transaction renames ``n`` products; seconds until the worker drained them."""
    ids = _burst_ids(url, source, n, seed=101)
    with connect(url) as conn:
        catalog_sql.rename(conn, source, ids, f" (burst A{time.time():.0f})", add=True)
        conn.commit()
    seconds = _wait_drained(url, 3600)
    out = BurstResult(len(ids), round(seconds, 2), round(len(ids) / seconds, 1))
    progress(
        f"burst of {out.rows:,} renames drained in {out.watch_s} s: {out.watch_rows_per_s} rows/s"
    )
    return out


def _embed_burst(
    settings: Settings, url: str, source: Source, out: BurstResult, progress: Callable[[str], None]
) -> BurstResult:
    """The same burst size for a batch ``embed`` (the worker stopped, capture's queue
    cleared after): its rows/s in the same run."""
    ids = _burst_ids(url, source, out.rows, seed=202)
    with connect(url) as conn:
        catalog_sql.rename(conn, source, ids, f" (burst B{time.time():.0f})", add=True)
        conn.commit()
    run = sync(settings, SyncOptions(mode=settings.mode))
    with connect(url) as conn:  # the embed wrote them: the queue rows are moot
        watch_sql.take(conn, out.rows + 1000)
        conn.commit()
    out.embed_s = round(run.timings.total_s or 0.0, 2)
    out.embed_rows_per_s = round(run.written / out.embed_s, 1) if out.embed_s else 0.0
    pipeline_s = run.timings.pipeline_s or 0.0
    out.embed_pipeline_rows_per_s = round(run.written / pipeline_s, 1) if pipeline_s else 0.0
    if out.embed_pipeline_rows_per_s:
        out.share = round(out.watch_rows_per_s / out.embed_pipeline_rows_per_s, 3)
    progress(
        f"embed wrote {run.written:,} rows in {out.embed_s} s ({out.embed_rows_per_s} rows/s "
        f"end to end, {out.embed_pipeline_rows_per_s} rows/s in its embed stage); the worker "
        f"drained at {100 * out.share:.0f} % of the embed stage's rate"
    )
    return out


__all__ = ["FreshnessBench", "run"]
