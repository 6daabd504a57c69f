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

# constraint P@10: share of the top 10 meeting every constraint (constraint queries)
SCORE_COLUMNS = ("queries", "nDCG@10", "P@10", "MRR", "cP@10")


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
    tune: Annotated[
        bool,
        typer.Option(
            "--tune",
            help="Fit the hybrid fusion weights on the judged queries and report them on "
            "held-out folds (two-fold by query); --modes is ignored.",
        ),
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Graded relevance (nDCG@10, P@10, MRR) of judged shopper queries, per mode and language."""
    from prodsearch.bench import relevance as rel

    console = err if as_json else out  # --json: tables to stderr, the JSON alone on stdout
    if tune:
        _tune(console, queries, as_json)
        return
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
    gaps = rel.best_leg_gaps(scores, ("lang", "kind") if by_kind else ("lang",))
    if gaps:
        result["hybrid_vs_best_leg"] = _gaps(console, gaps)
        result["hybrid_losses"] = _losses(console, rel.hybrid_losses(scores))
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
    for column in table.columns[: len(keys)]:
        column.no_wrap = True
    for group, m in summary.items():
        cp = "–" if m.constraint_precision is None else f"{m.constraint_precision:.3f}"
        table.add_row(
            *group, str(m.queries), f"{m.ndcg:.3f}", f"{m.precision:.3f}", f"{m.mrr:.3f}", cp
        )
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


def _gaps(console: Console, gaps: dict[tuple[str, ...], dict[str, float]]) -> list[dict[str, Any]]:
    from rich.table import Table

    width = len(next(iter(gaps)))
    keys = ("lang", "kind")[:width]
    table = Table(*keys, "queries", "hybrid", "semantic", "lexical", "hybrid − better leg")
    table.title = "hybrid against its own legs (nDCG@10)"
    for key, g in gaps.items():
        table.add_row(
            *key,
            str(int(g["queries"])),
            f"{g['hybrid']:.3f}",
            f"{g['semantic']:.3f}",
            f"{g['lexical']:.3f}",
            f"{g['hybrid_minus_best']:+.3f}",
        )
    console.print(table)
    return [{"group": list(k), **v} for k, v in gaps.items()]


def _losses(console: Console, losses: list[dict[str, Any]]) -> list[dict[str, Any]]:
    for r in losses:
        console.print(
            f"  hybrid loses {r['best'] - r['hybrid']:.2f} to {r['best_leg']} on {r['query']!r} "
            f"({r['lang']}, {r['kind']}): {r['hybrid']:.3f} vs {r['best']:.3f}",
            markup=False,
            highlight=False,
        )
    if not losses:
        console.print("  no query where hybrid loses more than 0.3 nDCG to its better leg")
    return losses


def _tune(console: Console, queries: str | None, as_json: bool) -> None:
    """``--tune``: fit the fusion weights, print them and the held-out figures."""
    from rich.table import Table

    from prodsearch.bench import fusion_tune as ft
    from prodsearch.bench import relevance as rel

    result, legs, meta = ft.judge_and_tune(ready_settings(), queries)
    weights = Table("weights", *ft.GRID, title="hybrid fusion weights")
    rows = [("configured", result.configured), ("fitted on all", result.fitted)]
    rows += [(f"fitted without fold {i}", w) for i, w in enumerate(result.per_fold)]
    for label, w in rows:
        weights.add_row(label, *(f"{getattr(w, name):g}" for name in ft.GRID))
    console.print(weights)
    by_lang = rel.summarise(legs, ("mode", "lang"))
    held = ft.means(result.scores, "held_out")
    fitted = ft.means(result.scores, "fitted")
    configured = ft.means(result.scores, "configured")
    table = Table(
        "lang",
        "semantic",
        "lexical",
        "hybrid configured",
        "hybrid fitted (all)",
        "hybrid held-out",
        "held-out − better leg",
        title=f"nDCG@10, {meta['queries']} judged queries, {meta['products_embedded']:,} products "
        f"({ft.FOLDS}-fold by query for held-out)",
    )
    summary: list[dict[str, Any]] = []
    for lang in held:
        sem = by_lang[("semantic", lang)].ndcg
        lex = by_lang[("lexical", lang)].ndcg
        row = {
            "lang": lang,
            "semantic": sem,
            "lexical": lex,
            "hybrid_configured": configured[lang],
            "hybrid_fitted": fitted[lang],
            "hybrid_held_out": held[lang],
            "held_out_minus_best_leg": round(held[lang] - max(sem, lex), 4),
        }
        summary.append(row)
        table.add_row(
            lang,
            *(f"{row[k]:.3f}" for k in list(row)[1:6]),
            f"{row['held_out_minus_best_leg']:+.3f}",
        )
    console.print(table)
    if as_json:
        print_json(
            {
                "meta": meta,
                "configured": result.configured.as_dict(),
                "fitted": result.fitted.as_dict(),
                "per_fold": [w.as_dict() for w in result.per_fold],
                "by_lang": summary,
                "scores": result.scores,
            }
        )


def _plain(summary: dict[tuple[str, ...], Figures]) -> list[dict[str, Any]]:
    return [{"group": list(k), **v.as_dict()} for k, v in summary.items()]
