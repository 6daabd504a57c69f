"""``prodsearch bench soak`` (``make soak``): sustained mixed load while catalog changes
are embedded (docs/RELIABILITY.md)."""

from __future__ import annotations

from typing import Annotated

import typer

from prodsearch.cli.common import JsonFlag, out, print_json, progress_log, ready_settings


def soak(
    clients: Annotated[int, typer.Option(min=1, max=256, help="Concurrent clients.")] = 16,
    seconds: Annotated[float, typer.Option(min=1, help="How long the load runs.")] = 60.0,
    churn: Annotated[
        int, typer.Option(min=1, help="Products renamed and re-embedded in each round.")
    ] = 500,
    as_json: JsonFlag = False,
) -> None:
    """Mixed search load from many clients while catalog changes are embedded: requests,
    errors, p50/p99 and the server's memory at start and end (make soak)."""
    from prodsearch.bench import soak as bench

    r = bench.run(ready_settings(), clients, seconds, churn, progress=progress_log(as_json))
    if as_json:
        print_json(r.as_dict())
        return
    out.print(
        f"soak: {r.clients} clients, {r.seconds:g} s, {r.products:,} products: "
        f"{r.requests:,} requests ({r.rps} /s), {r.errors} errors {r.error_statuses or ''}\n"
        f"  by endpoint: {r.by_endpoint}\n"
        f"  latency p50 {r.p50_ms} ms, p99 {r.p99_ms} ms\n"
        f"  server RSS {r.rss_start_mb} MB -> {r.rss_end_mb} MB ({r.rss_growth_pct:+} %)\n"
        f"  meanwhile: {r.embed_runs} incremental embed runs ({r.embed_failures} failed), "
        f"{r.rows_changed:,} product changes",
        highlight=False,
    )
    if r.errors or r.embed_failures:
        raise typer.Exit(1)
