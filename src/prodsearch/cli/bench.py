"""``prodsearch bench``: benchmarks that print figures and their baseline ratios."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated

import typer

from prodsearch.cli.common import (
    JsonFlag,
    int_list,
    list_of,
    out,
    print_json,
    print_table,
    progress_log,
    ready_settings,
    split_list,
)
from prodsearch.cli.relevance import relevance
from prodsearch.cli.soak import soak
from prodsearch.config import (
    ENCODER_MODES,
    ENGINES,
    INDEX_TYPES,
    SEARCH_ENDPOINTS,
    get_settings,
)

if TYPE_CHECKING:
    from prodsearch.bench.embed import EmbedBench
    from prodsearch.bench.index import IndexBench
    from prodsearch.bench.search import SearchBench

app = typer.Typer(help="Benchmarks that print figures and baseline ratios.", no_args_is_help=True)
app.command("relevance")(relevance)
app.command("soak")(soak)


@app.command("polish")
def polish(as_json: JsonFlag = False) -> None:
    """Polish queries in semantic mode: English-only vs query map vs second Polish vectors."""
    from prodsearch.bench import polish as bench

    result = bench.run(ready_settings(), progress=progress_log(as_json))
    if as_json:
        print_json(result.as_dict())
        return
    print_table(
        f"semantic leg, exact search over {result.products:,} products",
        ("approach", "synonyms", "lang", "queries", "nDCG@10", "P@10", "MRR"),
        (
            (
                r.approach,
                "on" if r.synonyms else "off",
                r.lang,
                r.figures.queries,
                f"{r.figures.ndcg:.3f}",
                f"{r.figures.precision:.3f}",
                f"{r.figures.mrr:.3f}",
            )
            for r in result.rows
        ),
    )
    for name, cost in result.cost.items():
        out.print(
            f"{name}: +{cost.extra_bytes_per_product} B/product; "
            f"embed {cost.extra_embed}; query {cost.query}",
            highlight=False,
        )


BENCH_MODES = ("auto", *ENCODER_MODES)


def _modes(value: str) -> list[str]:
    """A --modes list with ``auto`` read as this CPU's choice (embedding/modes.py)."""
    from prodsearch.embedding.modes import cpu_choice

    return list(dict.fromkeys(cpu_choice().mode if m == "auto" else m for m in split_list(value)))


@app.command("encode")
def encode(
    texts: Annotated[int, typer.Option("--texts", min=64, help="Product texts to encode.")] = 2048,
    modes: Annotated[
        str,
        typer.Option(
            callback=list_of(BENCH_MODES), help="Comma-separated modes (auto: this CPU's)."
        ),
    ] = ",".join(ENCODER_MODES),
    rounds: Annotated[int, typer.Option(min=1, help="Timed rounds; medians reported.")] = 3,
    recall_products: Annotated[
        int, typer.Option(help="Also measure recall@10 vs exact on N products (0 = skip).")
    ] = 0,
    queries: Annotated[
        int | None,
        typer.Option(min=1, help="Queries timed one by one (200) and used for recall (all)."),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Encoder texts/s per mode vs sentence-transformers fp32 (batch 32), fidelity, latency."""
    from prodsearch.bench import encode as bench

    settings = get_settings()
    mode_list = _modes(modes)
    log = progress_log(as_json)
    result = bench.run(settings, texts, mode_list, rounds, queries or 200, progress=log)
    if recall_products:
        others = [m for m in mode_list if m != "exact"]
        result.recall = bench.recall_at_10(settings, recall_products, others, queries, progress=log)
    if as_json:
        print_json(result.as_dict())
        return
    print_table(
        f"encode {result.texts:,} product texts x {result.rounds} rounds; "
        f"{result.queries} single queries",
        ENCODE_COLUMNS,
        (
            (
                m.method,
                f"{m.texts_per_s:.1f}",
                f"{m.ratio:.2f}x",
                f"{m.cos_min:.5f}",
                f"{m.cos_mean:.5f}",
                f"{m.query_p50_ms:.2f}",
                f"{m.query_p95_ms:.2f}",
            )
            for m in result.methods
        ),
    )
    if (rec := result.recall) is not None:
        for mode, r in rec.modes.items():
            out.print(
                f"recall@10 vs exact (tie-aware), {rec.products:,} products, {rec.queries} "
                f"queries — {mode}: {r.recall_at_10:.4f} (worst query {r.min_query_recall:.1f})"
            )


@app.command("embed")
def embed(
    products: Annotated[int, typer.Option(min=100, help="Catalog size.")] = 20_000,
    modes: Annotated[
        str,
        typer.Option(
            callback=list_of(BENCH_MODES),
            help="Comma-separated modes (auto: the mode a first embed chooses on this CPU).",
        ),
    ] = "auto",
    baseline: Annotated[bool, typer.Option(help="Run the original method too.")] = True,
    engines: Annotated[
        str,
        typer.Option(
            "--engines",
            "--engine",
            callback=list_of(ENGINES),
            help="Engine, or comma-separated engines: local, ray (each mode on each).",
        ),
    ] = "local",
    workers: Annotated[
        int | None, typer.Option(min=1, help="ray: actors (default: CPUs here).")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """End-to-end embed products/s per mode (and engine) vs the original method, and the
    1%-changed rerun."""
    from prodsearch.bench import embed as bench

    result = bench.run(
        ready_settings(),
        products,
        _modes(modes),
        baseline,
        progress=progress_log(as_json),
        engines=split_list(engines),
        workers=workers,
    )
    if as_json:
        print_json(result.as_dict())
        return

    _print_embed(result, _modes("auto")[0])


def _print_embed(result: EmbedBench, default_mode: str) -> None:
    """The embed bench as a table, then the fixed and per-worker figures."""

    def label(method: str, engine: str, workers: int | None) -> str:
        name = f"{method} (default)" if method == default_mode else method
        return name if engine == "local" else f"{name} (ray x{workers})"

    def cell(value: float | None, fmt: str) -> str:
        return "-" if value is None else fmt.format(value)

    print_table(
        f"embed {result.eligible:,} products end to end (source → vectors → index ready)",
        EMBED_COLUMNS,
        (
            (
                label(m.method, m.engine, m.workers),
                f"{m.seconds:.1f}",
                f"{m.products_per_s:.1f}",
                cell(m.ratio, "{:.2f}x"),
                cell(None if m.write_share is None else 100 * m.write_share, "{:.1f}%"),
                cell(m.incremental_s, "{:.2f}"),
                cell(m.incremental_speedup, "{:.0f}x"),
            )
            for m in result.methods
        ),
    )
    for m in result.methods:
        if m.engine == "ray":
            out.print(
                f"{m.method} on ray: {m.rows_per_worker_s} rows per busy actor-second, "
                f"{m.fixed_s} s outside the encode stage (start-up, plan, index)",
                highlight=False,
            )
        elif m.method != "baseline":
            out.print(
                f"{m.method} local: writer {m.write_rows_per_s} rows per busy second, "
                f"{m.fixed_s} s outside the encode stage (load, plan, index)",
                highlight=False,
            )


@app.command("search")
def search(
    url: Annotated[
        str | None, typer.Option(help="A served API; default: start one on a free local port.")
    ] = None,
    concurrency: Annotated[
        str, typer.Option(callback=int_list(1, 1024), help="Comma-separated levels.")
    ] = "1,8",
    endpoints: Annotated[
        str, typer.Option(callback=list_of(SEARCH_ENDPOINTS), help="Comma-separated.")
    ] = "semantic,filtered,hybrid,similar,suggest",
    recall_queries: Annotated[
        int, typer.Option(min=0, help="Queries for recall@10 (all catalog ones + WANDS; 0 = skip).")
    ] = 200,
    queries: Annotated[
        int | None, typer.Option(min=1, help="Load queries per endpoint (default: all).")
    ] = None,
    baseline_queries: Annotated[
        int, typer.Option(min=1, help="Queries timed on the original path.")
    ] = 30,
    as_json: JsonFlag = False,
) -> None:
    """API latency p50/p95/p99 and requests/s per endpoint, recall@10, vs the original path."""
    from prodsearch.bench import search as bench

    levels = tuple(int(c) for c in split_list(concurrency))
    result = bench.run(
        ready_settings(),
        url,
        levels,
        tuple(split_list(endpoints)),
        recall_queries=recall_queries,
        load_queries=queries,
        baseline_queries=baseline_queries,
        progress=progress_log(as_json),
    )
    if as_json:
        print_json(result.as_dict())
    else:
        _print_search(result)


def _print_search(result: SearchBench) -> None:
    print_table(
        f"search API over HTTP — {result.embeddings:,} products, "
        f"{result.queries} queries, mode {result.mode}",
        ("endpoint", "concurrency", "requests", "errors", "p50 ms", "p95 ms", "p99 ms", "req/s"),
        (
            (
                r.endpoint,
                r.concurrency,
                r.requests,
                r.errors,
                f"{r.p50_ms:.2f}",
                f"{r.p95_ms:.2f}",
                f"{r.p99_ms:.2f}",
                f"{r.rps:.1f}",
            )
            for r in result.endpoints
        ),
    )
    for f in result.filter_sets:
        label = f"against the query: {f.against}" if f.against else json.dumps(f.filters)
        out.print(
            f"filtered {label}: p50 {f.p50_ms:.2f} ms, p95 {f.p95_ms:.2f} ms, strategy {f.strategy}"
        )
    for endpoint, p95_ratio in result.p95_ratios().items():
        out.print(f"{endpoint} p95 / semantic p95 at concurrency 1: {p95_ratio:.2f}x")
    if (rec := result.recall) is not None:
        out.print(
            f"recall@10 vs exact search ({rec.queries} queries, tie-aware): {rec.all:.4f} "
            f"— WANDS {rec.wands:.4f}, catalog {rec.catalog:.4f}; by ids {rec.ids:.4f}; "
            f"ε-recall (ε=0.01) {rec.eps:.4f}"
        )
    if (b := result.baseline) is not None:
        ratio = (
            f"semantic p50 is {b.ratio_p50}x faster"
            if b.ratio_p50
            else "run with the semantic endpoint for the ratio"
        )
        out.print(f"baseline ({b.method}): p50 {b.p50_ms} ms, p95 {b.p95_ms} ms — {ratio}")


@app.command("index")
def index(
    queries: Annotated[int, typer.Option(min=10, help="Queries for recall and latency.")] = 200,
    shapes: Annotated[
        str, typer.Option(callback=list_of(INDEX_TYPES), help="Comma-separated index shapes.")
    ] = "vector,halfvec",
    params: Annotated[
        str | None,
        typer.Option(
            callback=_check_pairs,
            help="Comma-separated MxEF_CONSTRUCTION pairs, e.g. 16x64,32x256 "
            "(default: the configured pair).",
        ),
    ] = None,
    ef: Annotated[
        str, typer.Option(callback=int_list(1, 1000), help="Comma-separated ef_search values.")
    ] = "40,100,200",
    existing: Annotated[
        bool, typer.Option("--existing", help="Measure the index as it is; build nothing.")
    ] = False,
    unique: Annotated[
        bool, typer.Option("--unique", help="Also index one vector per distinct text.")
    ] = False,
    live_share: Annotated[
        float,
        typer.Option(
            min=0.0,
            max=0.5,
            help="Also build over all rows but this share, then insert it live (as the "
            "watch worker writes), once per --insert-ef (0 = not measured).",
        ),
    ] = 0.0,
    insert_ef: Annotated[
        str,
        typer.Option(
            callback=int_list(4, 1000),
            help="Comma-separated ef_construction values the live inserts search with.",
        ),
    ] = "128",
    plot: Annotated[
        str | None, typer.Option(help="Write recall and latency vs ef_search as a PNG here.")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """HNSW shapes and build parameters: build time, size, recall@10, latency per ef_search."""
    from prodsearch.bench import index as bench

    pairs = [_pair(p) for p in split_list(params)] if params else None
    ef_values = [int(x) for x in split_list(ef)]
    result = bench.run(
        ready_settings(),
        shapes=split_list(shapes),
        params=pairs,
        ef_values=ef_values,
        n_queries=queries,
        progress=progress_log(as_json),
        existing=existing,
        unique=unique,
        live_share=live_share,
        insert_efs=[int(x) for x in split_list(insert_ef)],
    )
    if plot:
        bench.plot(result, plot)
    if as_json:
        print_json(result.as_dict())
    else:
        _print_index(result)


def _pair(text: str) -> tuple[int, int]:
    m, efc = text.split("x")  # ValueError unless exactly one "x"
    return int(m), int(efc)


def _check_pairs(value: str | None) -> str | None:
    """--params: MxEF pairs with m 2..100 and ef_construction 4..1000 (the settings' bounds)."""
    if value is None:
        return None
    try:
        pairs = [_pair(p) for p in split_list(value)]
        ok = bool(pairs) and all(2 <= m <= 100 and 4 <= efc <= 1000 for m, efc in pairs)
    except ValueError:
        ok = False
    if not ok:
        raise typer.BadParameter(
            f"{value!r}: use comma-separated MxEF_CONSTRUCTION pairs such as 16x64,32x256 "
            "(m 2-100, ef_construction 4-1000)"
        )
    return value


ENCODE_COLUMNS = (
    "method",
    "texts/s (median)",
    "ratio",
    "cos min",
    "cos mean",
    "query p50 ms",
    "query p95 ms",
)
EMBED_COLUMNS = (
    "method",
    "seconds",
    "products/s",
    "vs baseline",
    "write share",
    "1% rerun s",
    "full / rerun",
)
INDEX_COLUMNS = (
    "index",
    "m",
    "ef_constr.",
    "build s",
    "size",
    "ef_search",
    "recall@10",
    "ε-recall",
    "WANDS",
    "catalog",
    "p50 ms",
    "p95 ms",
    "insert ms",
)


def _print_index(result: IndexBench) -> None:
    entries = [(s.shape, s) for s in result.shapes]
    if result.unique is not None:
        entries.append((f"unique ({result.unique.rows or 0:,})", result.unique))
    for live in result.live:
        share = f"{(live.live_share or 0):.0%}"
        entries.append((f"{share} inserted at {live.insert_ef_construction}", live))
    print_table(
        f"HNSW over {result.rows:,} vectors, {result.queries} queries",
        INDEX_COLUMNS,
        (
            (
                label,
                shape.m,
                shape.ef_construction,
                f"{shape.build_s:.1f}",
                shape.size,
                row.ef_search,
                f"{row.recall_at_10:.4f}",
                f"{row.eps_recall_at_10:.4f}",
                f"{row.recall_wands:.4f}",
                f"{row.recall_catalog:.4f}",
                f"{row.p50_ms:.2f}",
                f"{row.p95_ms:.2f}",
                "" if shape.insert_ms is None else f"{shape.insert_ms:.2f}",
            )
            for label, shape in entries
            for row in shape.by_ef
        ),
    )


@app.command("freshness")
def freshness(
    rates: Annotated[
        str,
        typer.Option(callback=int_list(1, 10_000), help="Changes per second, comma-separated."),
    ] = "10,100",
    seconds: Annotated[float, typer.Option(min=1, help="How long each rate runs.")] = 60.0,
    burst: Annotated[int, typer.Option(min=0, help="Rows in the burst (0 = none).")] = 10_000,
    idle_seconds: Annotated[
        float, typer.Option(min=1, help="Search alone first: the idle baseline.")
    ] = 30.0,
    as_json: JsonFlag = False,
) -> None:
    """Lag from a catalog commit to searchable under `prodsearch watch`, at each change
    rate and for a burst, with search p95 against an idle baseline (see docs/BENCHMARKS.md)."""
    from prodsearch.bench import freshness as bench

    result = bench.run(
        ready_settings(),
        rates=tuple(float(r) for r in split_list(rates)),
        seconds=seconds,
        burst=burst,
        idle_s=idle_seconds,
        progress=progress_log(as_json),
    )
    if as_json:
        print_json(result.as_dict())
        return
    print_table(
        f"freshness under prodsearch watch — {result.products:,} products, mode {result.mode}",
        (
            "phase",
            "changes",
            "lag p50 s",
            "lag p95 s",
            "lag max s",
            "found",
            "search p95 ms",
            "vs idle",
        ),
        (
            (
                p.name,
                f"{p.changes:,}",
                p.lag_p50_s,
                p.lag_p95_s,
                p.lag_max_s,
                f"{p.found}/{p.searched}" if p.rate else "",
                f"{p.search_p95_ms:.1f}",
                f"{result.search_p95_ratio[p.name]:.2f}x" if p.rate else "1.00x",
            )
            for p in result.phases
        ),
    )
    if (b := result.burst) is not None:
        out.print(
            f"burst of {b.rows:,} rows: the worker drained it in {b.watch_s} s "
            f"({b.watch_rows_per_s} rows/s); embed wrote the same number in {b.embed_s} s "
            f"({b.embed_rows_per_s} rows/s end to end, {b.embed_pipeline_rows_per_s} rows/s "
            f"in its embed stage): the worker at {100 * b.share:.0f} % of the embed stage",
            highlight=False,
        )
