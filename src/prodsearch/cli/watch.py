"""``prodsearch watch``: keep embeddings in step with the catalog as it changes."""

from __future__ import annotations

import signal
from typing import Annotated

import typer

from prodsearch.cli.common import JsonFlag, open_db, out, print_json, print_table, ready_settings
from prodsearch.config import get_settings

app = typer.Typer(
    help="Continuous sync: capture catalog changes in PostgreSQL, embed them within seconds.",
)


@app.callback(invoke_without_command=True)
def watch(
    ctx: typer.Context,
    once: Annotated[
        bool, typer.Option("--once", help="Drain the queue, then exit (cron, scripts).")
    ] = False,
    poll: Annotated[
        bool,
        typer.Option(
            "--poll",
            help="No capture trigger (a read replica, a table owned by someone else): run "
            "the embed plan every PRODSEARCH_WATCH_POLL_S instead.",
        ),
    ] = False,
    batch_rows: Annotated[
        int | None, typer.Option(min=1, help="Ids per batch (PRODSEARCH_WATCH_BATCH_ROWS).")
    ] = None,
) -> None:
    """Run the worker: wake on each committed change, embed it as `embed` would. SIGTERM
    or Ctrl+C stop it after the batch in flight."""
    if ctx.invoked_subcommand is not None:
        return
    from prodsearch.watch.worker import WatchOptions, Worker

    settings = ready_settings()
    given = {"batch_rows": batch_rows} if batch_rows else {}
    opts = WatchOptions.from_settings(settings, once=once, poll=poll, **given)
    worker = Worker(settings, opts)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: worker.stop())
    out.print(
        f"watching {'by polling' if poll else 'the capture queue'} "
        f"({worker.encoder.mode} mode) — Ctrl+C stops",
        highlight=False,
    )
    totals = worker.run()
    out.print(
        f"stopped: {totals.batches:,} batches, {totals.written:,} rows written, "
        f"{totals.deleted:,} embeddings removed, {totals.without_text:,} without text (not "
        f"embedded), {totals.reconciliations} reconciliations",
        highlight=False,
    )


@app.command("install")
def install() -> None:
    """Put the capture trigger on the source table (needs: owner of the table, or the
    TRIGGER privilege on it, and CREATE on schema analytics_features)."""
    from prodsearch.catalog.source import load_source
    from prodsearch.watch import capture

    with open_db() as conn:
        source = load_source(conn, get_settings())
        cols = capture.install(conn, source, get_settings())
    out.print(f"capturing changes of {source.name} ({', '.join(cols)}); run `prodsearch watch`")


@app.command("uninstall")
def uninstall() -> None:
    """Remove the capture triggers, their functions and the queue."""
    from prodsearch.watch import capture

    with open_db() as conn:
        capture.uninstall(conn)
    out.print("change capture removed (triggers, functions, queue)")


@app.command("status")
def status(as_json: JsonFlag = False) -> None:
    """Whether capture is installed, the queue depth and the oldest pending change."""
    from prodsearch.watch import capture

    with open_db() as conn:
        st = capture.status(conn)
    if as_json:
        print_json(st.as_dict())
        return
    oldest = "-" if st.oldest_s is None else f"{st.oldest_s:.1f} s"
    print_table(
        "prodsearch watch",
        ("installed", "queued", "oldest pending", "failed items"),
        [("yes" if st.installed else "no", f"{st.queued:,}", oldest, f"{len(st.failed):,}")],
    )
    if st.failed:
        print_table(
            "failed items (prodsearch watch retry queues them again)",
            ("product", "tries", "state", "last failed", "error"),
            [
                (
                    str(f.product_id),
                    str(f.tries),
                    "set aside" if f.set_aside else "retrying",
                    f.last_failed_at.isoformat(timespec="seconds"),
                    f.error[:80],
                )
                for f in st.failed
            ],
        )


@app.command("retry")
def retry(
    ids: Annotated[list[int] | None, typer.Argument(help="Product ids of failed items.")] = None,
    every: Annotated[bool, typer.Option("--all", help="Every failed item.")] = False,
) -> None:
    """Queue failed items again (a worker writes them with its next batch)."""
    from prodsearch.watch import capture

    if bool(ids) == every:
        raise typer.BadParameter("give product ids or --all (not both)")
    with open_db() as conn:
        queued = capture.retry(conn, None if every else list(ids or []))
    out.print(f"{queued:,} failed item(s) queued again", highlight=False)


__all__ = ["app"]
