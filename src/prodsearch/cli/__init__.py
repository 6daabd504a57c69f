"""The ``prodsearch`` command line: thin — parse, call the core, print.

One module per command group (db, catalog, embed + index, search + serve, ops, bench,
demo); this one wires them into one Typer app and turns expected errors into one line
and exit status 1.
"""

from __future__ import annotations

import sys
from typing import Annotated

import psycopg
import typer
from rich.markup import escape

from prodsearch.cli import bench, catalog, db, demo, embed, ops, search
from prodsearch.cli.common import configure_logging, err
from prodsearch.db.retry import one_line
from prodsearch.errors import ProdsearchError

app = typer.Typer(
    help="Semantic product search on PostgreSQL + pgvector.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
_state = {"debug": False}


@app.callback()
def _root(
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks on errors.")] = False,
) -> None:
    _state["debug"] = debug


for command in (
    ops.config,
    ops.init,
    embed.embed,
    search.search,
    search.serve,
    ops.status,
    ops.verify,
    demo.demo,
):
    app.command()(command)
app.add_typer(db.app, name="db")
app.add_typer(catalog.app, name="catalog")
app.add_typer(embed.index_app, name="index")
app.add_typer(bench.app, name="bench")


def main() -> None:
    configure_logging()
    try:
        app()
    except ProdsearchError as exc:
        if _state["debug"]:
            raise
        err.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        sys.exit(1)
    except psycopg.OperationalError as exc:  # e.g. the server went away mid-command
        if _state["debug"]:
            raise
        err.print(f"[bold red]error:[/] database error: {escape(one_line(exc))}", highlight=False)
        sys.exit(1)
    except OSError as exc:  # the environment: a path that is not a writable folder, a full disk
        if _state["debug"]:
            raise
        where = f": {exc.filename}" if exc.filename else ""
        err.print(
            f"[bold red]error:[/] {escape(str(exc.strerror or exc))}{escape(where)} — check that "
            "PRODSEARCH_HOME "
            "(and any path given) is a writable folder with free space",
            highlight=False,
            soft_wrap=True,
        )
        sys.exit(1)
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)
