"""``prodsearch embed`` and ``prodsearch index``: vectors in sync with the catalog, and the
HNSW index over them."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated

import typer

from prodsearch.cli.common import (
    JsonFlag,
    counts,
    err,
    open_db,
    out,
    print_json,
    print_table,
    ready_settings,
)
from prodsearch.config import Engine, ModeSetting, Settings, get_settings
from prodsearch.db.names import INDEX_NAME

if TYPE_CHECKING:
    from rich.progress import Progress

    from prodsearch.embedding.sync import SyncOptions, SyncResult

index_app = typer.Typer(help=f"The HNSW index {INDEX_NAME}.", no_args_is_help=True)


def embed(
    mode: Annotated[
        ModeSetting | None,
        typer.Option(
            help="Default: PRODSEARCH_MODE (auto: the catalog's recorded mode, or the CPU's "
            "choice for a first embed). Another mode than the recorded one re-embeds all."
        ),
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
    engine: Annotated[
        Engine,
        typer.Option(
            help="Where the encode step runs: local (threads here) or ray (a Ray Data actor "
            "pool; needs pip install 'prodsearch[ray]').",
        ),
    ] = "local",
    ray_address: Annotated[
        str | None,
        typer.Option(help="ray: address of an existing cluster (default: start a local one)."),
    ] = None,
    workers: Annotated[
        int | None, typer.Option(min=1, help="ray: encoder actors (default: CPUs here).")
    ] = None,
) -> None:
    """Sync embeddings with the catalog: embed new and changed products, remove deleted ones."""
    from prodsearch.embedding.sync import SyncOptions

    settings = ready_settings()
    opts = SyncOptions(
        mode=mode or settings.mode,
        batch_size=batch_size,
        limit=limit,
        full_refresh=full_refresh,
        dry_run=dry_run,
        chunk_size=chunk_size,
        refit_map=refit_map,
        engine=engine,
        workers=workers,
        ray_address=ray_address,
    )
    run_sync(settings, opts, show_progress=not (quiet or as_json), as_json=as_json)


def run_sync(settings: Settings, opts: SyncOptions, show_progress: bool, as_json: bool) -> None:
    """One sync run with a progress bar on a terminal, then its summary."""
    from prodsearch.embedding.sync import sync

    bar, on_progress = _progress_bar(show_progress and err.is_terminal)
    with bar:
        result = sync(settings, opts, progress=on_progress)
    if as_json:
        print_json(result.as_dict())
    elif result.dry_run:
        out.print(
            f"dry run ({result.mode}): {result.to_embed:,} products would be embedded "
            f"({result.embedded:,} unique texts, {result.deduplicated:,} duplicates), "
            f"{result.deleted:,} embeddings would be deleted, "
            f"{result.skipped_unchanged:,} unchanged, {result.failed:,} without text"
        )
    else:
        _print_result(result, settings)


def _progress_bar(show: bool) -> tuple[Progress, Callable[[str, int, int], None]]:
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

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
        if event == "embed":
            speed = bar.tasks[task].speed
            rate = f"{speed:,.0f}" if speed else "-"
            bar.update(task, description="embedding", completed=done, total=total, rate=rate)
        elif event == "index":
            bar.update(task, description="building HNSW index", total=None)
        else:
            bar.update(task, description="embedding", completed=0, total=total)

    return bar, on_progress


def _print_result(result: SyncResult, settings: Settings) -> None:
    t = result.timings
    total = t.total_s or 0.0
    rate = result.written / t.pipeline_s if t.pipeline_s else 0.0
    print_table(
        f"embed run {result.run_id} ({result.mode}) — {result.status}",
        ("eligible", "embedded", "rows written", "unchanged", "deduplicated", "deleted", "failed"),
        [
            counts(
                result.eligible,
                result.embedded,
                result.written,
                result.skipped_unchanged,
                result.deduplicated,
                result.deleted,
                result.failed,
            )
        ],
    )
    write_share = 100 * (t.write_s or 0.0) / total if total else 0
    out.print(
        f"total {total:.1f} s, {rate:,.1f} products/s while embedding; index {result.index}"
        + (f" in {t.index_s:.1f} s" if t.index_s is not None else "")
        + (f", text indexes in {t.text_index_s:.1f} s" if t.text_index_s is not None else "")
        + f"; writing took {write_share:.1f}% of wall time"
    )
    out.print(f"log: {settings.logs_dir / 'embedding_pipeline.log'}")


@index_app.command("build")
def index_build(
    concurrently: Annotated[
        bool,
        typer.Option(
            help="Build the new graph beside the index in place, which keeps serving searches "
            "and taking writes until the new one replaces it (slower; twice the index's "
            "space meanwhile). Without it, searches and writes wait for the build."
        ),
    ] = False,
) -> None:
    """(Re)build the HNSW index (m, ef_construction and type from settings)."""
    from prodsearch.db import connect, hnsw, start_database
    from prodsearch.embedding.sync import build_index

    settings = get_settings()
    with open_db() as conn:  # started, migrated
        if not concurrently:
            seconds = build_index(conn, settings)
    with connect(start_database(settings), autocommit=True) as conn:
        if concurrently:
            seconds = build_index(conn, settings, concurrently=True)
        st = hnsw.status(conn)
    out.print(
        f"built {st.name} ({st.type}, m={st.m}, ef_construction={st.ef_construction}, "
        f"inserts at {st.insert_ef_construction}) in {seconds:.1f} s — {st.size}"
    )


@index_app.command("drop")
def index_drop() -> None:
    """Drop the HNSW index (search falls back to exact scans)."""
    from prodsearch.db import hnsw

    with open_db() as conn:
        existed = hnsw.drop(conn)
    out.print(f"dropped {INDEX_NAME}" if existed else "no index to drop")


@index_app.command("status")
def index_status(as_json: JsonFlag = False) -> None:
    """Size, m, ef_construction, valid/ready and rows of the HNSW index."""
    from prodsearch.db import hnsw

    with open_db() as conn:
        st = hnsw.status(conn)
    if as_json:
        print_json(st.as_dict())
        return
    if not st.exists:
        out.print(f"{st.name}: not built (run `prodsearch index build` or `prodsearch embed`)")
        return
    print_table(
        None,
        ("name", "type", "size", "m", "ef_construction", "valid", "ready", "rows"),
        [(st.name, st.type, st.size, st.m, st.ef_construction, st.valid, st.ready, st.rows)],
    )
