"""What every command group shares: the consoles, JSON output, tables, the database."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable, Iterable, Sequence
from typing import Annotated, Any

import psycopg
import typer
from rich.console import Console
from rich.table import Table

from prodsearch.config import Settings, get_settings

out = Console(soft_wrap=True)
err = Console(stderr=True)

JsonFlag = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]


def configure_logging() -> None:
    """Logging, once, at the command's entry: warnings and errors on stderr, one line
    each. Done before anything else runs, so a library that configures the root logger
    on the way (the ONNX export's tools do) finds it configured and changes nothing;
    progress belongs to the progress bar and the pipeline's own log file."""
    handler = logging.StreamHandler()
    # the handler's own level: records of loggers set lower (the sync's INFO lines for its
    # log file) propagate here and must stop here
    handler.setLevel(logging.WARNING)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(logging.WARNING)


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


def progress_log(quiet: bool) -> Callable[[str], None]:
    """Progress lines on stderr, or nothing (``--json`` keeps stdout and stderr clean)."""
    if quiet:
        return lambda _msg: None
    return lambda msg: err.print(f"  {msg}", highlight=False)


def split_list(value: str) -> list[str]:
    """``"a, b,,c"`` → ``["a", "b", "c"]``."""
    return [part.strip() for part in value.split(",") if part.strip()]


def list_of(allowed: Sequence[str]) -> Callable[[str], str]:
    """Callback for a comma-separated option whose items must each be in ``allowed``."""

    def check(value: str) -> str:
        items = split_list(value)
        bad = [item for item in items if item not in allowed]
        if bad or not items:
            shown = ", ".join(repr(b) for b in bad) or "nothing"
            raise typer.BadParameter(f"{shown}: use a comma-separated list of {', '.join(allowed)}")
        return value

    return check


def int_list(low: int, high: int) -> Callable[[str], str]:
    """Callback for a comma-separated list of integers from ``low`` to ``high``."""

    def check(value: str) -> str:
        items = split_list(value)
        try:
            ok = bool(items) and all(low <= int(item) <= high for item in items)
        except ValueError:
            ok = False
        if not ok:
            raise typer.BadParameter(
                f"{value!r}: use a comma-separated list of integers from {low} to {high}"
            )
        return value

    return check


def print_table(
    title: str | None,
    headers: Sequence[str],
    rows: Iterable[Sequence[Any]],
    **table_options: Any,
) -> None:
    """A rich table; each cell printed with ``str`` (None as an empty cell)."""
    table = Table(*headers, title=title, **table_options)
    for row in rows:
        table.add_row(*("" if cell is None else str(cell) for cell in row))
    out.print(table)


def counts(*values: int) -> list[str]:
    """Numbers with thousands separators, for table cells."""
    return [f"{v:,}" for v in values]


def ready_settings() -> Settings:
    """The settings, with the database they name started (the embedded server, unless
    ``DATABASE_URL`` names another): the explicit start for commands that need it."""
    from prodsearch.db import start_database

    settings = get_settings()
    start_database(settings)
    return settings


def open_db() -> psycopg.Connection[Any]:
    """Connect to the configured database (started if embedded) with the schema applied."""
    from prodsearch.db import connect, migrate, start_database

    conn = connect(start_database(get_settings()))
    migrate(conn)
    return conn
