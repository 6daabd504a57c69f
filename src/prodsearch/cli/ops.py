"""Operations: ``config``, ``init``, ``status`` and ``verify``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from prodsearch.cli.common import JsonFlag, err, open_db, out, print_json, print_table
from prodsearch.config import get_settings

if TYPE_CHECKING:
    from prodsearch.db.hnsw import IndexStatus
    from prodsearch.ops.status import LastRun
    from prodsearch.watch.capture import CaptureStatus


def config(as_json: JsonFlag = False) -> None:
    """Print the effective settings (secrets masked), and the encoder mode this CPU would
    choose (the catalog's recorded mode wins: `prodsearch status` shows it)."""
    from prodsearch.embedding.modes import cpu_choice

    values = get_settings().masked()
    choice = cpu_choice()
    values["mode_for_this_cpu"] = f"{choice.mode}: {choice.reason}"
    if as_json:
        print_json(values)
        return
    print_table("prodsearch settings", ("Setting", "Value"), values.items())


def init() -> None:
    """Connect (starting the embedded server if needed) and apply schema migrations."""
    from prodsearch.config import mask_url
    from prodsearch.db import connect, migrate, start_database

    url = start_database(get_settings())
    with connect(url) as conn:
        applied = migrate(conn)
    for mig in applied:
        out.print(f"applied migration {mig.version:04d}_{mig.name}")
    if not applied:
        out.print("schema is up to date (nothing to apply)")
    out.print(f"database: {mask_url(url)}")


def status(as_json: JsonFlag = False) -> None:
    """Eligible products, embeddings, coverage, stale rows, last run, index, database size."""
    from prodsearch.catalog.source import load_source
    from prodsearch.ops.status import report

    settings = get_settings()
    with open_db() as conn:
        rep = report(conn, load_source(conn, settings), settings)
    if as_json:
        print_json(rep.as_dict())
        return
    fresh = rep.freshness
    rows = [
        ("eligible products", f"{rep.eligible_products:,}"),
        ("embeddings", f"{rep.embeddings:,}"),
        ("coverage", f"{rep.coverage_percent:.2f}%"),
        (
            "missing / stale / orphaned",
            f"{fresh.missing:,} / {fresh.stale:,} / {fresh.orphans:,} "
            f"(stale = text, model or mode changed)",
        ),
        ("encoder mode", f"{rep.mode}: {rep.mode_reason} (PRODSEARCH_MODE={rep.configured_mode})"),
        ("last run", _last_run(rep.last_run)),
        ("index", _index(rep.index)),
        ("database size", rep.database_size),
        ("continuous sync", _capture(rep.capture)),
    ]
    print_table(f"prodsearch status — {rep.source}", ("", ""), rows, show_header=False)


def _last_run(run: LastRun | None) -> str:
    if run is None:
        return "none"
    return (
        f"#{run.run_id} {run.status} ({run.mode}, stage {run.stage}) at {run.started_at}, "
        f"{run.duration_s} s: {run.embedded:,} embedded, "
        f"{run.skipped_unchanged:,} unchanged, {run.deleted:,} deleted, "
        f"{run.failed:,} failed" + (f" — {run.error}" if run.error else "")
    )


def _capture(cap: CaptureStatus) -> str:
    if not cap.installed:
        return "not installed (`prodsearch watch install`, then `prodsearch watch`)"
    oldest = "" if cap.oldest_s is None else f", oldest pending {cap.oldest_s:.1f} s ago"
    failed = ""
    if cap.failed:
        aside = sum(f.set_aside for f in cap.failed)
        failed = (
            f"; {len(cap.failed):,} failed item(s), {aside:,} set aside"
            " (`prodsearch watch status`, `prodsearch watch retry`)"
        )
    return f"capturing changes; {cap.queued:,} queued{oldest}{failed}"


def _index(idx: IndexStatus) -> str:
    if not idx.exists:
        return f"{idx.name}: not built"
    return (
        f"{idx.name} ({idx.type}) {idx.size}, m={idx.m}, "
        f"ef_construction={idx.ef_construction} (inserts {idx.insert_ef_construction}), "
        f"valid={idx.valid}, ready={idx.ready}"
    )


def verify(
    sample: Annotated[int, typer.Option(min=1, help="Rows re-encoded for self-consistency.")] = 200,
    as_json: JsonFlag = False,
) -> None:
    """Check count parity, vector integrity, hashes, self-consistency and index recall."""
    from prodsearch.catalog.source import load_source
    from prodsearch.ops import verify as checks

    settings = get_settings()
    with open_db() as conn:
        results = checks.run(conn, load_source(conn, settings), settings, sample)
    failed = [c.name for c in results if not c.ok]
    if as_json:
        print_json({"ok": not failed, "failed": failed, "checks": [c.as_dict() for c in results]})
    else:
        print_table(
            "prodsearch verify",
            ("check", "result", "detail"),
            ((c.name, "[green]pass[/]" if c.ok else "[red]FAIL[/]", c.detail) for c in results),
        )
    if failed:
        err.print(f"verify failed: {', '.join(failed)}")
        raise typer.Exit(1)
