"""``prodsearch bench relevance``: run the judged queries, print and save the figures."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from prodsearch.bench import relevance as rel
from prodsearch.config import Settings
from prodsearch.db import connect, database_url, migrate
from prodsearch.search.setup import build_searcher, query_encoder


def main(
    settings: Settings,
    queries_path: str | None,
    modes: list[str],
    save_path: str | None,
    compare_path: str | None,
    by_kind: bool,
    out: Console,
) -> dict[str, Any]:
    url = database_url(settings)
    with connect(url) as conn:
        migrate(conn)
        encoder = query_encoder(settings)
        searcher = build_searcher(conn, settings, encoder)
        plain = None
        if "semantic_no_map" in modes:
            plain = build_searcher(conn, settings, encoder, use_query_map=False)
        queries = rel.load_queries(queries_path)
        queries += rel.part_number_queries(conn, searcher.source)
        scores = rel.run(conn, url, searcher, plain, queries, modes)
        products = conn.execute(
            "SELECT count(*) FROM analytics_features.product_embeddings"
        ).fetchone()
    meta = {
        "queries": len(queries),
        "products_embedded": products[0] if products else 0,
        "mode": settings.mode,
        "query_mode": encoder.mode,
        "model": encoder.model_name,
        "ef_search": settings.ef_search,
        "query_map": searcher.query_map is not None,
        "query_set": queries_path or "shipped",
    }
    by_lang = rel.summarise(scores, ("mode", "lang"))
    table = Table(
        "mode",
        "lang",
        "queries",
        "nDCG@10",
        "P@10",
        "MRR",
        title=f"relevance: {meta['queries']} judged queries, "
        f"{meta['products_embedded']:,} products, documents {meta['mode']}, "
        f"queries {meta['query_mode']}",
    )
    for (mode, lang), m in by_lang.items():
        table.add_row(
            mode,
            lang,
            str(m["queries"]),
            f"{m['ndcg@10']:.3f}",
            f"{m['p@10']:.3f}",
            f"{m['mrr']:.3f}",
        )
    out.print(table)
    result: dict[str, Any] = {"meta": meta, "by_lang": _plain(by_lang)}
    if by_kind:
        kinds = rel.summarise(scores, ("mode", "lang", "kind"))
        ktable = Table(
            "mode", "lang", "kind", "queries", "nDCG@10", "P@10", "MRR", title="by query kind"
        )
        for (mode, lang, kind), m in kinds.items():
            ktable.add_row(
                mode,
                lang,
                kind,
                str(m["queries"]),
                f"{m['ndcg@10']:.3f}",
                f"{m['p@10']:.3f}",
                f"{m['mrr']:.3f}",
            )
        out.print(ktable)
        result["by_kind"] = _plain(kinds)
    if compare_path:
        means, worse = rel.regressions(compare_path, scores)
        ctable = Table("mode", "lang", "before", "now", "change", title=f"against {compare_path}")
        for (mode, lang), (before, now) in sorted(means.items()):
            ctable.add_row(mode, lang, f"{before:.3f}", f"{now:.3f}", f"{now - before:+.3f}")
        out.print(ctable)
        for mode, query, before, now in worse:
            out.print(
                f"  regression ({mode}) {query!r}: nDCG {before:.3f} -> {now:.3f}",
                markup=False,
                highlight=False,
            )
        if not worse:
            out.print("  no query lost more than 0.1 nDCG")
        result["regressions"] = [
            {"mode": m, "query": q, "before": b, "now": n} for m, q, b, n in worse
        ]
    if save_path:
        rel.save(Path(save_path), scores, meta)
        out.print(f"per-query scores saved to {save_path}")
    return result


def _plain(summary: dict[tuple[str, ...], dict[str, float]]) -> list[dict[str, Any]]:
    return [{"group": list(k), **v} for k, v in summary.items()]
