"""``prodsearch db``: the embedded PostgreSQL server."""

from __future__ import annotations

import os
import sys

import typer

from prodsearch.cli.common import JsonFlag, out, print_json
from prodsearch.config import get_settings

app = typer.Typer(help="The embedded PostgreSQL server.", no_args_is_help=True)


@app.command("start")
def start() -> None:
    """Start the embedded server (initialising it on first use)."""
    from prodsearch.db import server

    out.print(f"running: {server.start(get_settings().pg_dir)}")


@app.command("stop")
def stop() -> None:
    """Stop the embedded server."""
    from prodsearch.db import server

    stopped = server.stop(get_settings().pg_dir)
    out.print("stopped" if stopped else "not running (nothing to stop)")


@app.command("status")
def status(as_json: JsonFlag = False) -> None:
    """Say whether the embedded server is running."""
    from prodsearch.db import server

    settings = get_settings()
    st = server.status(settings.pg_dir)
    external = settings.database_url is not None
    if as_json:
        print_json(
            {
                "running": st.running,
                "data_dir": str(st.data_dir),
                "pid": st.pid,
                "url": st.url,
                "external": external,
            }
        )
        return
    if st.running:
        out.print(f"running (pid {st.pid}) — {st.url}")
    else:
        out.print(f"stopped — data directory {st.data_dir}")
    if external:
        out.print("note: DATABASE_URL is set, so commands use that server, not the embedded one")


@app.command("url")
def url() -> None:
    """Print a connection URL usable by psql and psycopg (starts the embedded server)."""
    from prodsearch.db import start_database

    sys.stdout.write(start_database(get_settings()) + "\n")


@app.command(
    "psql",
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
)
def psql(ctx: typer.Context) -> None:
    """Run the bundled psql against the database; extra arguments go to psql."""
    from prodsearch.db import start_database
    from prodsearch.db.server import bin_path

    target = start_database(get_settings())
    binary = str(bin_path("psql"))
    sys.stdout.flush()
    os.execv(binary, [binary, target, *ctx.args])
