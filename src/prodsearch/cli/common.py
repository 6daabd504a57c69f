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

from prodsearch.config import get_settings

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


def open_db() -> psycopg.Connection[Any]:
    """Connect to the configured database with the schema applied."""
    from prodsearch.db import connect, database_url, migrate

    conn = connect(database_url(get_settings()))
    migrate(conn)
    return conn
