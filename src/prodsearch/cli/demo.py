"""``prodsearch demo``: database, demo catalog, embeddings, index, API — one command."""

from __future__ import annotations

from typing import Annotated

import typer

from prodsearch.cli.common import out
from prodsearch.cli.embed import run_sync
from prodsearch.cli.search import run_server
from prodsearch.config import get_settings


def demo(
    products: Annotated[
        int, typer.Option("--products", "-n", min=1, help="Demo catalog size.")
    ] = 20_000,
    serve_api: Annotated[
        bool, typer.Option("--serve/--no-serve", help="Serve the API at the end.")
    ] = True,
) -> None:
    """Start the database, build the demo catalog, embed it, index it, serve the API and page."""
    from prodsearch.catalog.generate import ensure_demo
    from prodsearch.catalog.source import load_source
    from prodsearch.config import mask_url
    from prodsearch.db import connect, migrate, start_database
    from prodsearch.embedding.sync import SyncOptions

    settings = get_settings()
    out.rule("prodsearch demo")
    url = start_database(settings)
    out.print(f"[1/5] database running: {mask_url(url)}")
    with connect(url) as conn:
        applied = migrate(conn)
        out.print(f"[2/5] schema ready ({len(applied)} migration(s) applied now)")
        count, generated = ensure_demo(conn, load_source(conn, settings), products)
    if generated:
        out.print(f"[3/5] demo catalog generated: {count:,} products")
    else:
        out.print(f"[3/5] catalog already holds {count:,} products (kept)")
    out.print(f"[4/5] embedding ({settings.mode} mode) and indexing — reruns skip unchanged rows")
    run_sync(settings, SyncOptions(mode=settings.mode), show_progress=True, as_json=False)
    if not serve_api:
        out.print("[5/5] not serving (--no-serve); run `prodsearch serve --watch` to start the API")
        return
    out.print(
        f"[5/5] open http://{settings.host}:{settings.port}/ — catalog edits reach search "
        "within seconds (prodsearch watch runs beside the API); Ctrl+C stops both "
        "(the database keeps running: `prodsearch db stop`)"
    )
    run_server(settings, None, None, workers=1, watch=True)
