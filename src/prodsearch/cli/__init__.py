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
from pydantic import ValidationError
from rich.markup import escape

try:  # typer >= 0.25 parses with its own copy of click
    from typer._click.exceptions import ClickException, NoArgsIsHelpError, UsageError
except ImportError:  # pragma: no cover - older typer on click
    from click.exceptions import (  # type: ignore[assignment]
        ClickException,
        NoArgsIsHelpError,
        UsageError,
    )

from prodsearch.cli import bench, catalog, db, demo, embed, model, ops, search, watch
from prodsearch.cli.common import configure_logging, err
from prodsearch.config import quiet_model_libraries
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
app.add_typer(watch.app, name="watch")
app.add_typer(model.app, name="model")


def usage_line(exc: UsageError) -> str:
    """A usage error as one line: what was wrong, and where the help is."""
    message = " ".join(exc.format_message().replace("Value error, ", "").split())
    where = f" (see {exc.ctx.command_path} --help)" if exc.ctx is not None else ""
    return f"error: {message}{where}"


def settings_line(exc: ValidationError) -> str:
    """Invalid settings as one line: each variable, its value and what it takes."""
    parts = []
    for e in exc.errors():
        field = str(e["loc"][0]) if e["loc"] else "settings"
        var = field.upper() if field.endswith("database_url") else f"PRODSEARCH_{field.upper()}"
        parts.append(f"{var}={e.get('input')!r}: {e['msg']}")
    return "error: invalid setting " + "; ".join(parts)


def main() -> None:
    configure_logging()
    quiet_model_libraries()
    try:
        code = app(standalone_mode=False)
        if isinstance(code, int) and code:
            sys.exit(code)
    except NoArgsIsHelpError as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except UsageError as exc:  # a bad option or value: found while parsing, nothing ran
        err.print(usage_line(exc), markup=False, highlight=False, soft_wrap=True)
        sys.exit(exc.exit_code)
    except ClickException as exc:
        err.print(f"error: {exc.format_message()}", markup=False, highlight=False)
        sys.exit(exc.exit_code)
    except typer.Abort:
        err.print("aborted")
        sys.exit(1)
    except ValidationError as exc:  # a setting from the environment or .env
        err.print(settings_line(exc), markup=False, highlight=False, soft_wrap=True)
        sys.exit(2)
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
