"""The ``prodsearch`` command line: thin — parse, call the core, print."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from prodsearch.config import get_settings
from prodsearch.errors import ProdsearchError

app = typer.Typer(
    help="Semantic product search on PostgreSQL + pgvector.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
db_app = typer.Typer(help="The embedded PostgreSQL server.", no_args_is_help=True)
app.add_typer(db_app, name="db")
bench_app = typer.Typer(
    help="Benchmarks that print figures and baseline ratios.", no_args_is_help=True
)
app.add_typer(bench_app, name="bench")
index_app = typer.Typer(help="The HNSW index idx_product_embeddings_hnsw.", no_args_is_help=True)
app.add_typer(index_app, name="index")
catalog_app = typer.Typer(
    help="The product catalog: generate, import, stats.", no_args_is_help=True
)
app.add_typer(catalog_app, name="catalog")

out = Console(soft_wrap=True)
err = Console(stderr=True)
_state: dict[str, bool] = {"debug": False}


@app.callback()
def _root(
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks on errors.")] = False,
) -> None:
    _state["debug"] = debug


def _print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


# ---------------------------------------------------------------- config / init


@app.command()
def config(
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Print the effective settings (secrets masked)."""
    values = get_settings().masked()
    if as_json:
        _print_json(values)
        return
    table = Table("Setting", "Value", title="prodsearch settings")
    for key, value in values.items():
        table.add_row(key, "" if value is None else str(value))
    out.print(table)


@app.command()
def init() -> None:
    """Connect (starting the embedded server if needed) and apply schema migrations."""
    from prodsearch.config import mask_url
    from prodsearch.db import connect, database_url, migrate

    url = database_url(get_settings())
    with connect(url) as conn:
        applied = migrate(conn)
    if applied:
        for mig in applied:
            out.print(f"applied migration {mig.version:04d}_{mig.name}")
    else:
        out.print("schema is up to date (nothing to apply)")
    out.print(f"database: {mask_url(url)}")


# ---------------------------------------------------------------- db


@db_app.command("start")
def db_start() -> None:
    """Start the embedded server (initialising it on first use)."""
    from prodsearch.db import server

    settings = get_settings()
    url = server.start(settings.pg_dir)
    out.print(f"running: {url}")


@db_app.command("stop")
def db_stop() -> None:
    """Stop the embedded server."""
    from prodsearch.db import server

    settings = get_settings()
    stopped = server.stop(settings.pg_dir)
    out.print("stopped" if stopped else "not running (nothing to stop)")


@db_app.command("status")
def db_status(
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Say whether the embedded server is running."""
    from prodsearch.db import server

    settings = get_settings()
    st = server.status(settings.pg_dir)
    if as_json:
        _print_json(
            {
                "running": st.running,
                "data_dir": str(st.data_dir),
                "pid": st.pid,
                "url": st.url,
                "external": settings.database_url is not None,
            }
        )
        return
    if st.running:
        out.print(f"running (pid {st.pid}) — {st.url}")
    else:
        out.print(f"stopped — data directory {st.data_dir}")
    if settings.database_url is not None:
        out.print("note: DATABASE_URL is set, so commands use that server, not the embedded one")


@db_app.command("url")
def db_url() -> None:
    """Print a connection URL usable by psql and psycopg (starts the embedded server)."""
    from prodsearch.db import database_url

    sys.stdout.write(database_url(get_settings()) + "\n")


@db_app.command(
    "psql",
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
)
def db_psql(ctx: typer.Context) -> None:
    """Run the bundled psql against the database; extra arguments go to psql."""
    from prodsearch.db import database_url
    from prodsearch.db.server import bin_path

    url = database_url(get_settings())
    psql = str(bin_path("psql"))
    sys.stdout.flush()
    os.execv(psql, [psql, url, *ctx.args])


# ---------------------------------------------------------------- catalog


def _open_db() -> Any:
    """Connect to the configured database with the schema applied."""
    from prodsearch.db import connect, database_url, migrate

    conn = connect(database_url(get_settings()))
    migrate(conn)
    return conn


@catalog_app.command("generate")
def catalog_generate(
    products: Annotated[
        int, typer.Option("--products", "-n", min=1, help="Rows to generate.")
    ] = 20_000,
    seed: Annotated[int, typer.Option(help="Random seed: same seed, same catalog.")] = 42,
) -> None:
    """Replace the catalog with a deterministic, realistic auto-parts catalog (EN + PL)."""
    import time

    from rich.progress import Progress

    from prodsearch.catalog.generate import DEMO_TABLE, load

    started = time.perf_counter()
    with _open_db() as conn, Progress(console=err, transient=True) as bar:
        task = bar.add_task("generating", total=products)
        load(conn, products, seed, progress=lambda n: bar.update(task, completed=n))
    elapsed = time.perf_counter() - started
    out.print(
        f"generated {products:,} products (seed {seed}) into {DEMO_TABLE} "
        f"in {elapsed:.1f} s ({products / elapsed:,.0f} rows/s)"
    )


@catalog_app.command("stats")
def catalog_stats_cmd(
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Field coverage of the catalog over non-deleted rows, plus total and deleted."""
    from prodsearch.catalog.source import load_source
    from prodsearch.catalog.stats import catalog_stats

    with _open_db() as conn:
        stats = catalog_stats(conn, load_source(conn, get_settings()))
    if as_json:
        _print_json(stats.as_dict())
        return
    table = Table("Field", "Coverage", "Percentage", title=f"{stats.table} — field coverage")
    for cov in stats.coverage:
        table.add_row(cov.field, f"{cov.filled:,} / {cov.eligible:,}", f"{cov.percent:.1f}%")
    out.print(table)
    out.print(f"total: {stats.total:,}   deleted: {stats.deleted:,}   eligible: {stats.eligible:,}")


@catalog_app.command("import")
def catalog_import(
    path: Annotated[Path, typer.Argument(help="CSV, TSV, JSONL or Parquet file.")],
    fmt: Annotated[
        str | None, typer.Option("--format", help="csv|tsv|jsonl|parquet (default: extension).")
    ] = None,
    mapping: Annotated[
        list[str] | None,
        typer.Option("--map", help="TARGET=SOURCE column mapping, repeatable: --map name=title."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable summary.")] = False,
) -> None:
    """Upsert a catalog file by product_id; bad rows go to PATH.rejects.jsonl with reasons."""
    from prodsearch.catalog.importer import import_file, parse_mapping

    columns = parse_mapping(mapping or [])
    with _open_db() as conn:
        summary = import_file(conn, path, fmt, columns)
    if as_json:
        _print_json(summary.as_dict())
    else:
        table = Table(
            "read",
            "inserted",
            "updated",
            "unchanged",
            "rejected",
            title=f"import {path.name} ({summary.format})",
        )
        table.add_row(
            *(
                f"{n:,}"
                for n in (
                    summary.read,
                    summary.inserted,
                    summary.updated,
                    summary.unchanged,
                    summary.rejected,
                )
            )
        )
        out.print(table)
        for reason, count in summary.reasons.most_common():
            out.print(f"  rejected {count:,}: {reason}")
        if summary.ignored_columns:
            out.print(f"  ignored columns: {', '.join(summary.ignored_columns)}")
        if summary.rejects_path:
            out.print(f"  rejected rows with line numbers and reasons: {summary.rejects_path}")
    if not summary.balanced:  # a bug, never expected: say so loudly
        raise ProdsearchError("import counts do not add up; please report this")


# ---------------------------------------------------------------- embed / index


@app.command()
def embed(
    mode: Annotated[
        str | None, typer.Option(help="exact | bf16 | int8 (default: PRODSEARCH_MODE).")
    ] = None,
    batch_size: Annotated[int | None, typer.Option(min=1, help="Texts per encoder batch.")] = None,
    limit: Annotated[int | None, typer.Option(min=1, help="Embed at most N products.")] = None,
    full_refresh: Annotated[
        bool, typer.Option("--full-refresh", help="Re-embed everything, stored hashes ignored.")
    ] = False,
    dry_run: Annotated[
        bool,
        typer.Option("--dry-run", help="Say what would be embedded and deleted; change nothing."),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON summary.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
    chunk_size: Annotated[
        int, typer.Option(min=1, help="Unique texts per committed chunk.")
    ] = 1024,
    refit_map: Annotated[
        bool,
        typer.Option("--refit-map", help="Refit the Polish->English query map from the catalog."),
    ] = False,
) -> None:
    """Sync embeddings with the catalog: embed new and changed products, remove deleted ones."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    from prodsearch.embedding.sync import SyncOptions, sync

    settings = get_settings()
    opts = SyncOptions(
        mode=mode or settings.mode,
        batch_size=batch_size,
        limit=limit,
        full_refresh=full_refresh,
        dry_run=dry_run,
        chunk_size=chunk_size,
        refit_map=refit_map,
    )
    show = err.is_terminal and not (quiet or as_json)
    bar = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]} products/s"),
        TimeRemainingColumn(),
        console=err,
        disable=not show,
        transient=True,
    )
    task = bar.add_task("planning", total=None, rate="-")

    def on_progress(event: str, done: int, total: int) -> None:
        speed = bar.tasks[task].speed
        if event == "embed":
            bar.update(
                task,
                description="embedding",
                completed=done,
                total=total,
                rate=f"{speed:,.0f}" if speed else "-",
            )
        elif event == "index":
            bar.update(task, description="building HNSW index", total=None)
        else:
            bar.update(task, description="embedding", completed=0, total=total)

    with bar:
        result = sync(settings, opts, progress=on_progress)
    if as_json:
        _print_json(result.as_dict())
        return
    if result.dry_run:
        out.print(
            f"dry run ({result.mode}): {result.to_embed:,} products would be embedded "
            f"({result.embedded:,} unique texts, {result.deduplicated:,} duplicates), "
            f"{result.deleted:,} embeddings would be deleted, "
            f"{result.skipped_unchanged:,} unchanged, {result.failed:,} without text"
        )
        return
    t = result.timings
    total = t.get("total_s", 0.0)
    rate = result.written / t["pipeline_s"] if t.get("pipeline_s") else 0.0
    table = Table(
        "eligible",
        "embedded",
        "rows written",
        "unchanged",
        "deduplicated",
        "deleted",
        "failed",
        title=f"embed run {result.run_id} ({result.mode}) — {result.status}",
    )
    table.add_row(
        *(
            f"{n:,}"
            for n in (
                result.eligible,
                result.embedded,
                result.written,
                result.skipped_unchanged,
                result.deduplicated,
                result.deleted,
                result.failed,
            )
        )
    )
    out.print(table)
    write_share = 100 * t.get("write_s", 0) / total if total else 0
    out.print(
        f"total {total:.1f} s, {rate:,.1f} products/s while embedding; index {result.index}"
        + (f" in {t['index_s']:.1f} s" if "index_s" in t else "")
        + f"; writing took {write_share:.1f}% of wall time"
    )
    out.print(f"log: {settings.logs_dir / 'embedding_pipeline.log'}")


@index_app.command("build")
def index_build() -> None:
    """(Re)build the HNSW index (m, ef_construction and type from settings)."""
    from prodsearch.embedding import index

    settings = get_settings()
    with _open_db() as conn:
        seconds = index.build(
            conn, settings.index_type, settings.hnsw_m, settings.hnsw_ef_construction
        )
        st = index.status(conn)
    out.print(
        f"built {st['name']} ({st['type']}, m={st['m']}, "
        f"ef_construction={st['ef_construction']}) in {seconds:.1f} s — {st['size']}"
    )


@index_app.command("drop")
def index_drop() -> None:
    """Drop the HNSW index (search falls back to exact scans)."""
    from prodsearch.embedding import index

    with _open_db() as conn:
        existed = index.drop(conn)
    out.print(f"dropped {index.INDEX_NAME}" if existed else "no index to drop")


@index_app.command("status")
def index_status(
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Size, m, ef_construction, valid/ready and rows of the HNSW index."""
    from prodsearch.embedding import index

    with _open_db() as conn:
        st = index.status(conn)
    if as_json:
        _print_json(st)
        return
    if not st["exists"]:
        out.print(f"{st['name']}: not built (run `prodsearch index build` or `prodsearch embed`)")
        return
    table = Table("name", "type", "size", "m", "ef_construction", "valid", "ready", "rows")
    table.add_row(
        st["name"],
        st["type"],
        st["size"],
        str(st["m"]),
        str(st["ef_construction"]),
        str(st["valid"]),
        str(st["ready"]),
        f"{st['rows'] or 0:,}",
    )
    out.print(table)


# ---------------------------------------------------------------- search / serve


def _parse_filters(pairs: list[str], source: Any) -> dict[str, Any]:
    """``["category=Brake Pads", "price_max=200", "in_stock=true"]`` → typed filters."""
    from prodsearch.search.filters import allowed_keys

    allowed = allowed_keys(source)
    filters: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        key = key.strip()
        if not sep or key not in allowed:
            raise ProdsearchError(
                f"--filter {pair!r}: use KEY=VALUE with KEY one of {', '.join(allowed)}"
            )
        kind = allowed[key][1]
        if kind == "bool":
            if value.strip().lower() not in ("true", "false"):
                raise ProdsearchError(f"--filter {pair!r}: {key} takes true or false")
            filters[key] = value.strip().lower() == "true"
        elif kind in ("min", "max"):
            try:
                filters[key] = float(value)
            except ValueError:
                raise ProdsearchError(f"--filter {pair!r}: {key} takes a number") from None
        else:
            filters.setdefault(key, []).append(value)
    return filters


@app.command()
def search(
    query: Annotated[str, typer.Argument(help="What to look for.")],
    mode: Annotated[str, typer.Option(help="semantic | filtered | hybrid")] = "semantic",
    filters: Annotated[
        list[str] | None,
        typer.Option("--filter", help="KEY=VALUE, repeatable: category=Brake Pads, price_max=200."),
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=100)] = 10,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Search the catalog through the same code as the API, without HTTP."""
    import asyncio

    import psycopg
    from pgvector.psycopg import register_vector_async

    from prodsearch.db import database_url
    from prodsearch.search import SearchError
    from prodsearch.search.setup import build_searcher

    if mode not in ("semantic", "filtered", "hybrid"):
        raise ProdsearchError(f"--mode {mode!r}: use semantic, filtered or hybrid")
    settings = get_settings()
    with _open_db() as conn:
        searcher = build_searcher(conn, settings)
    parsed = _parse_filters(filters or [], searcher.source)

    async def run() -> Any:
        async with await psycopg.AsyncConnection.connect(database_url(settings)) as aconn:
            await register_vector_async(aconn)
            await searcher.load_vocabulary(aconn)
            if mode == "hybrid":
                return await searcher.hybrid(aconn, query, limit, 0, parsed)
            return await searcher.semantic(aconn, query, limit, 0, parsed)

    try:
        resp = asyncio.run(run())
    except SearchError as exc:
        raise ProdsearchError(str(exc)) from exc
    if as_json:
        _print_json(resp.as_dict())
        return
    table = Table(
        "#",
        "score",
        "id",
        "name",
        "category",
        "brand",
        "price",
        "stock",
        title=f"{mode}: {query!r} — {resp.count} results in {resp.execution_time_ms:.1f} ms "
        f"(embed {resp.timings['embed_ms']:.1f} ms, search {resp.timings['search_ms']:.1f} ms)",
    )
    for i, r in enumerate(resp.results, 1):
        table.add_row(
            str(i),
            f"{r['score']:.4f}",
            str(r["product_id"]),
            r["name"] or "",
            r["category"] or "",
            r["brand"] or "",
            "" if r["price"] is None else f"{r['price']:.2f}",
            "yes" if r["in_stock"] else "no",
        )
    out.print(table)


@app.command()
def serve(
    host: Annotated[
        str | None, typer.Option(help="Bind address (default PRODSEARCH_HOST).")
    ] = None,
    port: Annotated[int | None, typer.Option(help="Port (default PRODSEARCH_PORT).")] = None,
    workers: Annotated[int, typer.Option(min=1, help="Worker processes.")] = 1,
) -> None:
    """Serve the search API and the web page (model loaded once per worker)."""
    import uvicorn

    from prodsearch.db import database_url

    settings = get_settings()
    database_url(settings)  # start the embedded server before workers fork
    host = host or settings.host
    port = port or settings.port
    out.print(f"serving on http://{host}:{port}/  (API docs: http://{host}:{port}/docs)")
    uvicorn.run(
        "prodsearch.api.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level="warning",
        access_log=False,
    )


# ---------------------------------------------------------------- status / verify


@app.command()
def status(
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Eligible products, embeddings, coverage, stale rows, last run, index, database size."""
    from prodsearch.catalog.source import load_source
    from prodsearch.ops.status import report

    settings = get_settings()
    with _open_db() as conn:
        rep = report(conn, load_source(conn, settings), settings)
    if as_json:
        _print_json(rep)
        return
    table = Table("", "", title=f"prodsearch status — {rep['source']}", show_header=False)
    table.add_row("eligible products", f"{rep['eligible_products']:,}")
    table.add_row("embeddings", f"{rep['embeddings']:,}")
    table.add_row("coverage", f"{rep['coverage_percent']:.2f}%")
    table.add_row(
        "missing / stale / orphaned",
        f"{rep['missing']:,} / {rep['stale']:,} / {rep['orphans']:,} "
        f"(stale = text, model or mode changed; configured mode {rep['configured_mode']})",
    )
    run = rep["last_run"]
    table.add_row(
        "last run",
        "none"
        if run is None
        else f"#{run['run_id']} {run['status']} ({run['mode']}) at {run['started_at']}, "
        f"{run['duration_s']} s: {run['embedded']:,} embedded, "
        f"{run['skipped_unchanged']:,} unchanged, {run['deleted']:,} deleted, "
        f"{run['failed']:,} failed" + (f" — {run['error']}" if run["error"] else ""),
    )
    idx = rep["index"]
    table.add_row(
        "index",
        f"{idx['name']}: not built"
        if not idx["exists"]
        else f"{idx['name']} ({idx['type']}) {idx['size']}, m={idx['m']}, "
        f"ef_construction={idx['ef_construction']}, valid={idx['valid']}, "
        f"ready={idx['ready']}",
    )
    table.add_row("database size", str(rep["database_size"]))
    out.print(table)


@app.command()
def verify(
    sample: Annotated[int, typer.Option(min=1, help="Rows re-encoded for self-consistency.")] = 200,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Check count parity, vector integrity, hashes, self-consistency and index recall."""
    from prodsearch.catalog.source import load_source
    from prodsearch.ops import verify as checks

    settings = get_settings()
    with _open_db() as conn:
        results = checks.run(conn, load_source(conn, settings), settings, sample)
    failed = [c.name for c in results if not c.ok]
    if as_json:
        _print_json({"ok": not failed, "failed": failed, "checks": [c.as_dict() for c in results]})
    else:
        table = Table("check", "result", "detail", title="prodsearch verify")
        for c in results:
            table.add_row(c.name, "[green]pass[/]" if c.ok else "[red]FAIL[/]", c.detail)
        out.print(table)
    if failed:
        err.print(f"verify failed: {', '.join(failed)}")
        raise typer.Exit(1)


# ---------------------------------------------------------------- bench


@bench_app.command("relevance")
def bench_relevance(
    queries: Annotated[
        str | None, typer.Option(help="Judged query TSV (default: the shipped set).")
    ] = None,
    modes: Annotated[
        str, typer.Option(help="Comma-separated: semantic hybrid lexical exact semantic_no_map.")
    ] = "semantic,hybrid,lexical,exact",
    save: Annotated[str | None, typer.Option(help="Write per-query scores (JSON) here.")] = None,
    compare: Annotated[
        str | None, typer.Option(help="A saved run to compare with: changes and regressions.")
    ] = None,
    by_kind: Annotated[bool, typer.Option("--by-kind", help="Also per query kind.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Graded relevance (nDCG@10, P@10, MRR) of judged shopper queries, per mode and language."""
    from prodsearch.bench import relevance_cli

    mode_list = [m.strip() for m in modes.split(",") if m.strip()]
    console = err if as_json else out
    result = relevance_cli.main(get_settings(), queries, mode_list, save, compare, by_kind, console)
    if as_json:
        _print_json(result)


@bench_app.command("polish")
def bench_polish(
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Polish queries in semantic mode: English-only vs query map vs second Polish vectors."""
    from prodsearch.bench import polish

    log = (lambda msg: err.print(f"  {msg}", highlight=False)) if not as_json else (lambda _m: None)
    result = polish.run(get_settings(), progress=log)
    if as_json:
        _print_json(result)
        return
    title = f"semantic leg, exact search over {result['products']:,} products"
    table = Table("approach", "synonyms", "lang", "queries", "nDCG@10", "P@10", "MRR", title=title)
    for r in result["rows"]:
        table.add_row(
            r["approach"],
            "on" if r["synonyms"] else "off",
            r["lang"],
            str(r["queries"]),
            f"{r['ndcg@10']:.3f}",
            f"{r['p@10']:.3f}",
            f"{r['mrr']:.3f}",
        )
    out.print(table)
    for name, cost in result["cost"].items():
        out.print(
            f"{name}: +{cost['extra_bytes_per_product']} B/product; "
            f"embed {cost['extra_embed']}; query {cost['query']}",
            highlight=False,
        )


@bench_app.command("encode")
def bench_encode(
    texts: Annotated[int, typer.Option("--texts", min=64, help="Product texts to encode.")] = 2048,
    modes: Annotated[str, typer.Option(help="Comma-separated modes.")] = "exact,bf16,int8",
    rounds: Annotated[int, typer.Option(min=1, help="Timed rounds; medians reported.")] = 3,
    recall_products: Annotated[
        int, typer.Option(help="Also measure recall@10 vs exact on N products (0 = skip).")
    ] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Encoder texts/s per mode vs sentence-transformers fp32 (batch 32), fidelity, latency."""
    from prodsearch.bench import encode as bench

    mode_list = [m.strip() for m in modes.split(",") if m.strip()]
    log = (lambda msg: err.print(f"  {msg}", highlight=False)) if not as_json else (lambda _m: None)
    result = bench.run(texts, mode_list, rounds, progress=log)
    if recall_products:
        result["recall"] = bench.recall_at_10(
            recall_products, [m for m in mode_list if m != "exact"], progress=log
        )
    if as_json:
        _print_json(result)
        return
    table = Table(
        "method",
        "texts/s (median)",
        "ratio",
        "cos min",
        "cos mean",
        "query p50 ms",
        "query p95 ms",
        title=f"encode {result['texts']:,} product texts x {result['rounds']} rounds; "
        f"{result['queries']} single queries",
    )
    for m in result["methods"]:
        table.add_row(
            m["method"],
            f"{m['texts_per_s']:.1f}",
            f"{m['ratio']:.2f}x",
            f"{m['cos_min']:.5f}",
            f"{m['cos_mean']:.5f}",
            f"{m['query_p50_ms']:.2f}",
            f"{m['query_p95_ms']:.2f}",
        )
    out.print(table)
    if "recall" in result:
        rec = result["recall"]
        for mode, r in rec["modes"].items():
            out.print(
                f"recall@10 vs exact, {rec['products']:,} products, {rec['queries']} queries — "
                f"{mode}: {r['recall_at_10']:.4f} (worst query {r['min_query_recall']:.1f})"
            )


@bench_app.command("embed")
def bench_embed(
    products: Annotated[int, typer.Option(min=100, help="Catalog size.")] = 20_000,
    modes: Annotated[str, typer.Option(help="Comma-separated modes.")] = "exact,bf16,int8",
    baseline: Annotated[bool, typer.Option(help="Run the original method too.")] = True,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """End-to-end embed products/s per mode vs the original method, and the 1%-changed rerun."""
    from prodsearch.bench import embed as bench

    log = (lambda msg: err.print(f"  {msg}", highlight=False)) if not as_json else (lambda _m: None)
    mode_list = [m.strip() for m in modes.split(",") if m.strip()]
    result = bench.run(get_settings(), products, mode_list, baseline, progress=log)
    if as_json:
        _print_json(result)
        return
    table = Table(
        "method",
        "seconds",
        "products/s",
        "vs baseline",
        "write share",
        "1% rerun s",
        "full / rerun",
        title=f"embed {result['eligible']:,} products end to end (source → vectors → index ready)",
    )
    for m in result["methods"]:
        table.add_row(
            m["method"],
            f"{m['seconds']:.1f}",
            f"{m['products_per_s']:.1f}",
            f"{m['ratio']:.2f}x" if m.get("ratio") else "-",
            f"{100 * m['write_share']:.1f}%" if "write_share" in m else "-",
            f"{m['incremental_s']:.2f}" if "incremental_s" in m else "-",
            f"{m['incremental_speedup']:.0f}x" if "incremental_speedup" in m else "-",
        )
    out.print(table)


@bench_app.command("search")
def bench_search(
    url: Annotated[
        str | None, typer.Option(help="A served API; default: start one on a free local port.")
    ] = None,
    concurrency: Annotated[str, typer.Option(help="Comma-separated levels.")] = "1,8",
    endpoints: Annotated[
        str, typer.Option(help="Comma-separated.")
    ] = "semantic,filtered,hybrid,similar",
    recall_queries: Annotated[
        int, typer.Option(min=0, help="Queries for recall@10 (all catalog ones + WANDS; 0 = skip).")
    ] = 200,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """API latency p50/p95/p99 and requests/s per endpoint, recall@10, vs the original path."""
    from prodsearch.bench import search as bench

    log = (lambda msg: err.print(f"  {msg}", highlight=False)) if not as_json else (lambda _m: None)
    result = bench.run(
        get_settings(),
        url,
        tuple(int(c) for c in concurrency.split(",")),
        tuple(e.strip() for e in endpoints.split(",") if e.strip()),
        recall_queries=recall_queries,
        progress=log,
    )
    if as_json:
        _print_json(result)
        return
    table = Table(
        "endpoint",
        "concurrency",
        "requests",
        "errors",
        "p50 ms",
        "p95 ms",
        "p99 ms",
        "req/s",
        title=f"search API over HTTP — {result['embeddings']:,} products, "
        f"{result['queries']} queries, mode {result['mode']}",
    )
    for r in result["endpoints"]:
        table.add_row(
            r["endpoint"],
            str(r["concurrency"]),
            str(r["requests"]),
            str(r["errors"]),
            f"{r['p50_ms']:.2f}",
            f"{r['p95_ms']:.2f}",
            f"{r['p99_ms']:.2f}",
            f"{r['rps']:.1f}",
        )
    out.print(table)
    b = result["baseline"]
    for f in result.get("filter_sets", []):
        out.print(
            f"filtered {json.dumps(f['filters'])}: p50 {f['p50_ms']:.2f} ms, "
            f"p95 {f['p95_ms']:.2f} ms, strategy {f['strategy']}"
        )
    if "recall" in result:
        rec = result["recall"]
        out.print(
            f"recall@10 vs exact search ({rec['queries']} queries, tie-aware): {rec['all']:.4f} "
            f"— WANDS {rec['wands']:.4f}, catalog {rec['catalog']:.4f}; by ids {rec['ids']:.4f}; "
            f"ε-recall (ε=0.01) {rec['eps']:.4f}"
        )
    ratio = (
        f"semantic p50 is {b['ratio_p50']}x faster"
        if b["ratio_p50"]
        else "run with the semantic endpoint for the ratio"
    )
    out.print(f"baseline ({b['method']}): p50 {b['p50_ms']} ms, p95 {b['p95_ms']} ms — {ratio}")


@bench_app.command("index")
def bench_index(
    queries: Annotated[int, typer.Option(min=10, help="Queries for recall and latency.")] = 200,
    shapes: Annotated[str, typer.Option(help="Comma-separated: vector, halfvec.")] = (
        "vector,halfvec"
    ),
    params: Annotated[
        str | None,
        typer.Option(
            help="Comma-separated MxEF_CONSTRUCTION pairs, e.g. 16x64,32x256 "
            "(default: the configured pair)."
        ),
    ] = None,
    ef: Annotated[str, typer.Option(help="Comma-separated ef_search values.")] = "40,100,200",
    existing: Annotated[
        bool, typer.Option("--existing", help="Measure the index as it is; build nothing.")
    ] = False,
    unique: Annotated[
        bool, typer.Option("--unique", help="Also index one vector per distinct text.")
    ] = False,
    plot: Annotated[
        str | None, typer.Option(help="Write recall and latency vs ef_search as a PNG here.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """HNSW shapes and build parameters: build time, size, recall@10, latency per ef_search."""
    from prodsearch.bench import index as bench

    try:
        pairs: list[tuple[int, int]] | None = None
        if params:
            pairs = []
            for pair in params.split(","):
                m, efc = pair.split("x")  # ValueError unless exactly one "x"
                pairs.append((int(m), int(efc)))
        ef_values = [int(x) for x in ef.split(",")]
    except ValueError as exc:
        raise typer.BadParameter(
            f"--params takes MxEF pairs like 16x64, --ef integers: {exc}"
        ) from exc
    log = (lambda msg: err.print(f"  {msg}", highlight=False)) if not as_json else (lambda _m: None)
    result = bench.run(
        get_settings(),
        shapes=[s.strip() for s in shapes.split(",") if s.strip()],
        params=pairs,
        ef_values=ef_values,
        n_queries=queries,
        progress=log,
        existing=existing,
        unique=unique,
    )
    if plot:
        bench.plot(result, plot)
    if as_json:
        _print_json(result)
        return
    table = Table(
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
        title=f"HNSW over {result['rows']:,} vectors, {result['queries']} queries",
    )
    entries = [(s["shape"], s) for s in result["shapes"]]
    if "unique" in result:
        entries.append((f"unique ({result['unique']['rows']:,})", result["unique"]))
    for label, shape in entries:
        for row in shape["by_ef"]:
            table.add_row(
                label,
                str(shape["m"]),
                str(shape["ef_construction"]),
                f"{shape['build_s']:.1f}",
                shape["size"] or "",
                str(row["ef_search"]),
                f"{row['recall_at_10']:.4f}",
                f"{row['eps_recall_at_10']:.4f}",
                f"{row['recall_wands']:.4f}",
                f"{row['recall_catalog']:.4f}",
                f"{row['p50_ms']:.2f}",
                f"{row['p95_ms']:.2f}",
            )
    out.print(table)


# ---------------------------------------------------------------- demo


@app.command()
def demo(
    products: Annotated[
        int, typer.Option("--products", "-n", min=1, help="Demo catalog size.")
    ] = 20_000,
    serve_api: Annotated[
        bool, typer.Option("--serve/--no-serve", help="Serve the API at the end.")
    ] = True,
) -> None:
    """Start the database, build the demo catalog, embed it, index it, serve the API and page."""
    from psycopg import sql

    from prodsearch.catalog.generate import DEMO_TABLE, load
    from prodsearch.catalog.source import load_source
    from prodsearch.db import connect, database_url, migrate

    settings = get_settings()
    out.rule("prodsearch demo")
    url = database_url(settings)
    out.print(f"[1/5] database running: {url}")
    with connect(url) as conn:
        applied = migrate(conn)
        out.print(f"[2/5] schema ready ({len(applied)} migration(s) applied now)")
        source = load_source(conn, settings)
        row = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(source.qualified)).fetchone()
        existing = row[0] if row else 0
        if existing:
            out.print(f"[3/5] catalog already holds {existing:,} products (kept)")
        elif source.name != DEMO_TABLE:
            raise ProdsearchError(
                f"{source.name} (PRODSEARCH_SOURCE_TABLE) is empty: import a catalog into it "
                "first (prodsearch catalog import FILE), or unset PRODSEARCH_SOURCE_TABLE "
                "for the demo catalog"
            )
        else:
            load(conn, products)
            out.print(f"[3/5] demo catalog generated: {products:,} products")
    out.print(f"[4/5] embedding ({settings.mode} mode) and indexing — reruns skip unchanged rows")
    embed(
        mode=None,
        batch_size=None,
        limit=None,
        full_refresh=False,
        dry_run=False,
        as_json=False,
        quiet=False,
        chunk_size=1024,
    )
    if not serve_api:
        out.print("[5/5] not serving (--no-serve); run `prodsearch serve` to start the API")
        return
    out.print(
        f"[5/5] open http://{settings.host}:{settings.port}/ — Ctrl+C stops the server "
        "(the database keeps running: `prodsearch db stop`)"
    )
    serve(host=None, port=None, workers=1)


def main() -> None:
    try:
        app()
    except ProdsearchError as exc:
        if _state["debug"]:
            raise
        err.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        sys.exit(1)
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)
