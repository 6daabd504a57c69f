"""The ``prodsearch`` command line: thin — parse, call the core, print."""

from __future__ import annotations

import json
import os
import sys
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

out = Console()
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
    from prodsearch.db import connect, database_url, migrate
    from prodsearch.db.connect import describe

    url = database_url(get_settings())
    with connect(url) as conn:
        applied = migrate(conn)
    if applied:
        for mig in applied:
            out.print(f"applied migration {mig.version:04d}_{mig.name}")
    else:
        out.print("schema is up to date (nothing to apply)")
    out.print(f"database: {describe(url)}")


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


# ---------------------------------------------------------------- demo


@app.command()
def demo() -> None:
    """Start the database, create the schema, and run what the demo has so far."""
    from prodsearch.db import connect, database_url, migrate

    settings = get_settings()
    out.rule("prodsearch demo")
    url = database_url(settings)
    out.print(f"[1] database running: {url}")
    with connect(url) as conn:
        applied = migrate(conn)
    out.print(f"[2] schema ready ({len(applied)} migration(s) applied now)")
    out.print(
        "[3] not there yet: demo catalog, embedding, index and API "
        "(issues #3–#6); nothing more to run"
    )


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
