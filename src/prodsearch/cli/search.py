"""``prodsearch search`` (one query, no HTTP) and ``prodsearch serve`` (the API)."""

from __future__ import annotations

import signal
import subprocess
import sys
from typing import Annotated, Any

import typer

from prodsearch.cli.common import JsonFlag, out, print_json, print_table, ready_settings
from prodsearch.config import SearchMode, Settings, get_settings
from prodsearch.errors import ProdsearchError


def search(
    query: Annotated[str, typer.Argument(help="What to look for.")],
    mode: Annotated[SearchMode, typer.Option()] = "semantic",
    filters: Annotated[
        list[str] | None,
        typer.Option("--filter", help="KEY=VALUE, repeatable: category=Brake Pads, price_max=200."),
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=100)] = 10,
    as_json: JsonFlag = False,
) -> None:
    """Search the catalog through the same code as the API, without HTTP."""
    from prodsearch.search.setup import search_once

    resp = search_once(ready_settings(), mode, query, limit, filters or [])
    if as_json:
        print_json(resp.as_dict())
        return
    t = resp.timings
    print_table(
        f"{mode}: {query!r} — {resp.count} results in {resp.execution_time_ms:.1f} ms "
        f"(embed {t.embed_ms:.1f} ms, search {t.search_ms:.1f} ms)",
        ("#", "score", "id", "name", "category", "brand", "price", "stock"),
        (
            (
                i,
                f"{r.score:.4f}",
                r.product_id,
                r.name,
                r.category,
                r.brand,
                None if r.price is None else f"{r.price:.2f}",
                "yes" if r.in_stock else "no",
            )
            for i, r in enumerate(resp.results, 1)
        ),
    )


def serve(
    host: Annotated[
        str | None, typer.Option(help="Bind address (default PRODSEARCH_HOST).")
    ] = None,
    port: Annotated[int | None, typer.Option(help="Port (default PRODSEARCH_PORT).")] = None,
    workers: Annotated[int, typer.Option(min=1, help="Worker processes.")] = 1,
    watch: Annotated[
        bool,
        typer.Option(
            "--watch",
            help="Also run `prodsearch watch` beside the API (installing change capture "
            "on the source table if it is not there), so catalog edits reach search.",
        ),
    ] = False,
) -> None:
    """Serve the search API and the web page (model loaded once per worker)."""
    run_server(get_settings(), host, port, workers, watch=watch)


def _check_port_free(host: str, port: int) -> None:
    """One clear line instead of uvicorn's bind error after start-up."""
    import socket

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise ProdsearchError(
                f"cannot listen on {host}:{port} ({exc.strerror or exc}): stop what uses it, "
                "or choose another port with --port or PRODSEARCH_PORT"
            ) from None


def run_server(
    settings: Settings, host: str | None, port: int | None, workers: int, watch: bool = False
) -> None:
    import uvicorn

    from prodsearch.db import start_database

    start_database(settings)  # before workers fork
    host = host or settings.host
    port = port or settings.port
    _check_port_free(host, port)
    watcher = _start_watcher(settings) if watch else None
    try:
        _serve(uvicorn, settings, host, port, workers)
    finally:
        if watcher is not None:
            watcher.terminate()  # SIGTERM: it stops after the batch in flight
            try:
                watcher.wait(timeout=30)
            except subprocess.TimeoutExpired:
                watcher.kill()


def _start_watcher(settings: Settings) -> subprocess.Popen[bytes]:
    """`prodsearch watch` as a child process (capture installed first when missing); it
    ends with this process (SIGTERM at exit, and the kernel's parent-death signal)."""
    from prodsearch.catalog.source import load_source
    from prodsearch.db import connect, database_url, migrate
    from prodsearch.watch import capture

    with connect(database_url(settings)) as conn:
        migrate(conn)
        if not capture.status(conn).installed:
            cols = capture.install(conn, load_source(conn, settings), settings)
            out.print(f"change capture installed on the catalog ({', '.join(cols)})")
    out.print("watching the catalog: edits reach search within seconds (prodsearch watch)")
    return subprocess.Popen(
        [sys.executable, "-m", "prodsearch", "watch"], preexec_fn=_die_with_parent
    )


def _die_with_parent() -> None:
    """In the child: SIGTERM when the parent dies, however it dies (Linux)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def _serve(uvicorn: Any, settings: Settings, host: str, port: int, workers: int) -> None:
    if workers > 1:  # every worker's samples in one folder, summed by each /metrics
        from prodsearch.api.metrics import prepare_multiprocess

        prepare_multiprocess(settings.home_dir / "run" / f"metrics-{port}")
    out.print(f"serving on http://{host}:{port}/  (API docs: http://{host}:{port}/docs)")
    uvicorn.run(
        "prodsearch.api.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level="warning",
        access_log=False,
    )
