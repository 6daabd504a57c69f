"""``prodsearch catalog``: generate the demo catalog, import a file, field coverage."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from prodsearch.cli.common import (
    JsonFlag,
    counts,
    err,
    open_db,
    out,
    print_json,
    print_table,
)
from prodsearch.config import ImportFormat, get_settings
from prodsearch.errors import ProdsearchError

app = typer.Typer(help="The product catalog: generate, import, stats.", no_args_is_help=True)


@app.command("generate")
def generate(
    products: Annotated[
        int, typer.Option("--products", "-n", min=1, help="Rows to generate.")
    ] = 20_000,
    seed: Annotated[int, typer.Option(help="Random seed: same seed, same catalog.")] = 42,
) -> None:
    """Replace the catalog with a deterministic, realistic auto-parts catalog (EN + PL)."""
    from rich.progress import Progress

    from prodsearch.catalog.generate import DEMO_TABLE, load

    started = time.perf_counter()
    with open_db() as conn, Progress(console=err, transient=True) as bar:
        task = bar.add_task("generating", total=products)
        load(conn, products, seed, progress=lambda n: bar.update(task, completed=n))
    elapsed = time.perf_counter() - started
    out.print(
        f"generated {products:,} products (seed {seed}) into {DEMO_TABLE} "
        f"in {elapsed:.1f} s ({products / elapsed:,.0f} rows/s)"
    )


@app.command("stats")
def stats(as_json: JsonFlag = False) -> None:
    """Field coverage of the catalog over non-deleted rows, plus total and deleted."""
    from prodsearch.catalog.source import load_source
    from prodsearch.catalog.stats import catalog_stats

    with open_db() as conn:
        result = catalog_stats(conn, load_source(conn, get_settings()))
    if as_json:
        print_json(result.as_dict())
        return
    print_table(
        f"{result.table} — field coverage",
        ("Field", "Coverage", "Percentage"),
        ((c.field, f"{c.filled:,} / {c.eligible:,}", f"{c.percent:.1f}%") for c in result.coverage),
    )
    out.print(
        f"total: {result.total:,}   deleted: {result.deleted:,}   eligible: {result.eligible:,}"
    )


@app.command("import")
def import_(
    path: Annotated[Path, typer.Argument(help="CSV, TSV, JSONL or Parquet file.")],
    fmt: Annotated[
        ImportFormat | None,
        typer.Option("--format", help="Default: from the extension."),
    ] = None,
    mapping: Annotated[
        list[str] | None,
        typer.Option("--map", help="TARGET=SOURCE column mapping, repeatable: --map name=title."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable summary.")] = False,
) -> None:
    """Upsert a catalog file by product_id; bad rows go to PATH.rejects.jsonl with reasons."""
    from prodsearch.catalog.importer import import_file, parse_mapping
    from prodsearch.catalog.source import load_source

    columns = parse_mapping(mapping or [])
    with open_db() as conn:
        summary = import_file(conn, path, load_source(conn, get_settings()), fmt, columns)
    if as_json:
        print_json(summary.as_dict())
    else:
        print_table(
            f"import {path.name} ({summary.format})",
            ("read", "inserted", "updated", "unchanged", "rejected"),
            [
                counts(
                    summary.read,
                    summary.inserted,
                    summary.updated,
                    summary.unchanged,
                    summary.rejected,
                )
            ],
        )
        for reason, count in summary.reasons.most_common():
            out.print(f"  rejected {count:,}: {reason}")
        if summary.ignored_columns:
            out.print(f"  ignored columns: {', '.join(summary.ignored_columns)}")
        if summary.rejects_path:
            out.print(f"  rejected rows with line numbers and reasons: {summary.rejects_path}")
    if not summary.balanced:  # a bug, never expected: say so loudly
        raise ProdsearchError("import counts do not add up; please report this")
