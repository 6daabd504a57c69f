"""``prodsearch bench relevance``: run the judged queries, print and save the figures."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

from prodsearch.cli.common import (
    JsonFlag,
    err,
    list_of,
    out,
    print_json,
    ready_settings,
    split_list,
)
from prodsearch.config import JUDGED_MODES

if TYPE_CHECKING:
    from prodsearch.bench.relevance import Figures

SCORE_COLUMNS = ("queries", "nDCG@10", "P@10", "MRR")


def relevance(
    queries: Annotated[
        str | None, typer.Option(help="Judged query TSV (default: the shipped set).")
    ] = None,
    modes: Annotated[
        str,
        typer.Option(
            callback=list_of(JUDGED_MODES),
            help=f"Comma-separated: {', '.join(JUDGED_MODES)}.",
        ),
    ] = "semantic,hybrid,lexical,exact",
    save: Annotated[str | None, typer.Option(help="Write per-query scores (JSON) here.")] = None,
    compare: Annotated[
        str | None, typer.Option(help="A saved run to compare with: changes and regressions.")
    ] = None,
    by_kind: Annotated[bool, typer.Option("--by-kind", help="Also per query kind.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Graded relevance (nDCG@10, P@10, MRR) of judged shopper queries, per mode and language."""
    from prodsearch.bench import relevance as rel

    console = err if as_json else out  # --json: tables to stderr, the JSON alone on stdout
    scores, meta = rel.judge(ready_settings(), queries, split_list(modes))
    by_lang = rel.summarise(scores, ("mode", "lang"))
    _scores_table(
        console,
        f"relevance: {meta['queries']} judged queries, {meta['products_embedded']:,} products, "
        f"documents {meta['mode']}, queries {meta['query_mode']}",
        ("mode", "lang"),
        by_lang,
    )
    result: dict[str, Any] = {"meta": meta, "by_lang": _plain(by_lang)}
    if by_kind:
        kinds = rel.summarise(scores, ("mode", "lang", "kind"))
        _scores_table(console, "by query kind", ("mode", "lang", "kind"), kinds)
        result["by_kind"] = _plain(kinds)
    if compare:
        result["regressions"] = _compare(console, compare, scores)
    if save:
        rel.save(Path(save), scores, meta)
        console.print(f"per-query scores saved to {save}")
    if as_json:
        print_json(result)


def _scores_table(
    console: Console,
    title: str,
    keys: tuple[str, ...],
    summary: dict[tuple[str, ...], Figures],
) -> None:
    from rich.table import Table

    table = Table(*keys, *SCORE_COLUMNS, title=title)
    for group, m in summary.items():
        table.add_row(*group, str(m.queries), f"{m.ndcg:.3f}", f"{m.precision:.3f}", f"{m.mrr:.3f}")
    console.print(table)


def _compare(console: Console, path: str, scores: list[Any]) -> list[dict[str, Any]]:
    """Mean changes against a saved run, and every query that lost more than 0.1 nDCG."""
    from rich.table import Table

    from prodsearch.bench import relevance as rel

    means, worse = rel.regressions(path, scores)
    table = Table("mode", "lang", "before", "now", "change", title=f"against {path}")
    for (mode, lang), (before, now) in sorted(means.items()):
        table.add_row(mode, lang, f"{before:.3f}", f"{now:.3f}", f"{now - before:+.3f}")
    console.print(table)
    for mode, query, before, now in worse:
        console.print(
            f"  regression ({mode}) {query!r}: nDCG {before:.3f} -> {now:.3f}",
            markup=False,
            highlight=False,
        )
    if not worse:
        console.print("  no query lost more than 0.1 nDCG")
    return [{"mode": m, "query": q, "before": b, "now": n} for m, q, b, n in worse]


def _plain(summary: dict[tuple[str, ...], Figures]) -> list[dict[str, Any]]:
    return [{"group": list(k), **v.as_dict()} for k, v in summary.items()]
