"""``prodsearch model``: the model cache (ONNX exports), prepared explicitly."""

from __future__ import annotations

from typing import Annotated

import typer

from prodsearch.cli.common import JsonFlag, list_of, out, print_json, split_list
from prodsearch.config import encoder_mode, get_settings
from prodsearch.embedding.export import ONNX_MODES as MODES

app = typer.Typer(help="The model cache: ONNX exports of the model.", no_args_is_help=True)


@app.command("export")
def export(
    modes: Annotated[
        str, typer.Option(callback=list_of(MODES), help=f"Comma-separated: {', '.join(MODES)}.")
    ] = ",".join(MODES),
    as_json: JsonFlag = False,
) -> None:
    """Build the ONNX export of each mode into PRODSEARCH_MODEL_CACHE (each checked against
    its manifest; only a missing or stale one is built). Needs the `export` extra
    (PyTorch); a server given this cache never does."""
    import time

    from prodsearch.embedding.export import onnx_model
    from prodsearch.embedding.model import resolve_model

    settings = get_settings()
    source = resolve_model(settings.model)
    done = []
    for mode in split_list(modes):
        started = time.perf_counter()
        path = onnx_model(source, encoder_mode(mode), settings.models_dir)
        done.append(
            {
                "mode": mode,
                "path": str(path),
                "bytes": path.stat().st_size,
                "seconds": round(time.perf_counter() - started, 2),
            }
        )
        if not as_json:
            out.print(
                f"{mode}: {path} ({path.stat().st_size / 2**20:.1f} MiB, "
                f"{done[-1]['seconds']:.1f} s)",
                highlight=False,
            )
    if as_json:
        print_json({"model": source.name, "cache": str(settings.models_dir), "exports": done})
