"""Hybrid search that does not lose to its own legs — BM25 for the full-text leg,
fusion that weighs the full-text leg by how well it represents the query, and fitting
those weights on judged queries with held-out folds."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path
from typing import Any

import psycopg
import pytest
from pgvector.psycopg import register_vector_async

from prodsearch.bench import fusion_tune as ft
from prodsearch.bench import relevance as rel
from prodsearch.config import Settings
from prodsearch.db.names import EMBEDDINGS_NAME, TERMS_NAME
from prodsearch.search.bm25 import HEAD_BOOST, CorpusStats, head_slot, head_weighted, slot_idfs
from prodsearch.search.fusion import FusionWeights, LexicalEvidence, agreement, fuse
from prodsearch.search.lexquery import analyze
from prodsearch.search.results import SearchOptions
from prodsearch.search.rows import Candidate
from prodsearch.search.service import Searcher
from prodsearch.search.setup import build_searcher
from prodsearch.search.synonyms import Synonyms


def _searcher(search_db: str, pg_root: Path, encoders: dict[str, Any]) -> Searcher:
    settings = Settings(home=pg_root, database_url=search_db, mode="int8")
    with psycopg.connect(search_db) as conn:
        return build_searcher(conn, settings, encoders["int8"])


def _legs(searcher: Searcher, url: str, text: str) -> list[Candidate]:
    async def run() -> list[Candidate]:
        async with await psycopg.AsyncConnection.connect(url, autocommit=True) as aconn:
            await register_vector_async(aconn)
            await searcher.load_vocabulary(aconn)
            legs = await searcher.hybrid_legs(aconn, text, SearchOptions(limit=10))
            return legs.rows

    return asyncio.run(run())


def test_idf_follows_document_counts() -> None:
    stats = CorpusStats(docs=1000, mean_length=40.0, df={"brake": 600, "brak": 650, "wahacz": 5})
    common, rare = slot_idfs([[("brake",)], [("wahacz",)]], stats)
    assert rare > 3 * common > 0
    # a word's count is its most frequent form's; a phrase's its rarest word's; a slot's
    # the sum over its alternatives, at most the catalog
    assert stats.word_df("brake") == 650
    assert stats.slot_df([("brake", "wahacz")]) == 5
    assert stats.slot_df([("brake",), ("brake",)]) == 1000
    assert stats.idf(1) == stats.max_idf > stats.idf(5)


def test_the_head_noun_counts_more() -> None:
    """Polish puts the head noun first, English last: that slot's weight is boosted."""
    stats = CorpusStats(docs=1000, mean_length=40.0, df={"filtr": 300, "silnikow": 30})
    slots = [[("filtr",)], [("silnikowego",)]]
    plain = slot_idfs(slots, stats)
    assert plain[1] > plain[0]  # the modifier is the rarer word
    pl = head_weighted(plain, "pl")
    assert pl[0] == pytest.approx(HEAD_BOOST * plain[0]) and pl[1] == plain[1]
    en = head_weighted(plain, "en")
    assert en[1] == pytest.approx(HEAD_BOOST * plain[1]) and en[0] == plain[0]
    assert head_weighted(plain, None) == plain
    assert head_slot(1, "pl") is None


def test_bm25_ranks_a_rare_matching_word_above_a_common_one(
    search_db: str, pg_root: Path, encoders: dict[str, Any]
) -> None:
    """Two words no product has together: the full-text leg falls back to any word, and a
    product with the rare one must outrank every product with only the common one (ranked
    by how often a word occurs, the common word's products — with it in their name — would
    come first)."""
    with psycopg.connect(search_db) as conn:
        common, common_df = conn.execute(
            f"SELECT term, ndoc FROM {TERMS_NAME} WHERE term ~ '^[a-z]{{5,}}$' "
            "ORDER BY ndoc DESC, term LIMIT 1"
        ).fetchone()
        rare, rare_df = conn.execute(
            f"SELECT t.term, t.ndoc FROM {TERMS_NAME} AS t WHERE t.term ~ '^[a-z]{{6,}}$' "
            "AND t.ndoc BETWEEN 2 AND 30 AND NOT EXISTS (SELECT 1 FROM "
            f"{EMBEDDINGS_NAME} AS e WHERE e.search_tsv @@ to_tsquery('simple', "
            "%s || ' & ' || t.term)) ORDER BY t.ndoc, t.term LIMIT 1",
            (common,),
        ).fetchone()
    assert common_df > 10 * rare_df
    searcher = _searcher(search_db, pg_root, encoders)
    rows = _legs(searcher, search_db, f"{common} {rare}")
    lexical = sorted((r for r in rows if r.lexical_rank), key=lambda r: r.lexical_rank or 0)
    assert rows and rows[0].lexical_loose, "no product has both words: any word matches"
    with psycopg.connect(search_db) as conn:
        has_rare = {
            int(r[0])
            for r in conn.execute(
                f"SELECT product_id FROM {EMBEDDINGS_NAME} WHERE search_tsv @@ "
                "to_tsquery('simple', %s)",
                (rare,),
            )
        }
    top = [r.product_id for r in lexical[: len(has_rare)]]
    assert has_rare and set(top) == has_rare, (common, rare, top, has_rare)
    scores = [r.lexical_score or 0.0 for r in lexical]
    assert scores == sorted(scores, reverse=True)


def _row(pid: int, sem: int | None, lex: int | None, code_match: bool = False) -> Candidate:
    return Candidate(
        pid,
        semantic_rank=sem,
        lexical_rank=lex,
        code_match=code_match,
        vehicle_match=0,
        lexical_loose=False,
    )


# reciprocal rank fusion, the full-text leg at twice the weight: no specificity, no agreement
PLAIN_RRF = FusionWeights(
    rrf_k=60, lexical=2.0, coverage_power=1.0, specific_idf=0.0, loose=1.0, agreement_floor=1.0
)


def test_fusion_weighs_the_full_text_leg_by_what_it_kept() -> None:
    weights = FusionWeights(
        rrf_k=60, lexical=2.0, coverage_power=1.0, specific_idf=4.0, loose=0.5, agreement_floor=0.5
    )
    whole = LexicalEvidence(words=2, dropped=0, corrected=0, best_idf=5.0)
    half = LexicalEvidence(words=2, dropped=1, corrected=0, best_idf=5.0)
    common = LexicalEvidence(words=2, dropped=0, corrected=0, best_idf=1.0)
    agreeing = [_row(i, i, i) for i in range(1, 11)]
    disagreeing = [_row(i, None, i) for i in range(1, 11)] + [_row(20 + i, i, None) for i in (1, 2)]
    assert agreement(agreeing) == 1.0 and agreement(disagreeing) == 0.0
    assert fuse(agreeing, weights, whole).lexical_weight == pytest.approx(2.0)
    assert fuse(agreeing, weights, half).lexical_weight == pytest.approx(1.0)  # a word dropped
    # only a common word
    assert fuse(agreeing, weights, common).lexical_weight == pytest.approx(0.5)
    loose = [replace(r, lexical_loose=True) for r in agreeing]
    assert fuse(loose, weights, whole).lexical_weight == pytest.approx(1.0)
    assert fuse(disagreeing, weights, whole).lexical_weight == pytest.approx(1.0)
    # a corrected word counts half
    assert LexicalEvidence(words=2, dropped=0, corrected=1, best_idf=5).coverage == 0.75


def test_fusion_order_code_first_then_agreement() -> None:
    weights = PLAIN_RRF
    evidence = LexicalEvidence(words=1, dropped=0, corrected=0, best_idf=5.0)
    rows = [
        _row(1, 1, None),
        _row(2, 2, 1),  # in both legs: reinforced
        _row(3, None, None, code_match=True),
        _row(4, None, 2),
    ]
    ranked = fuse(rows, weights, evidence).rows
    assert [r.product_id for r in ranked] == [3, 2, 4, 1]
    assert ranked[1].score == pytest.approx(1 / 62 + 2 / 61)


def test_lost_words_lower_the_full_text_weight_in_the_api(
    search_db: str, pg_root: Path, encoders: dict[str, Any]
) -> None:
    """A query whose words the catalog lacks keeps the semantic leg in charge; the
    response says how much the full-text leg weighed."""
    from fastapi.testclient import TestClient

    from tests.test_api import make_client

    client: TestClient
    with make_client(search_db, pg_root) as client:
        whole = client.post(
            "/search/hybrid", json={"query": "brake pads", "explain": True, "limit": 10}
        ).json()
        lost = client.post(
            "/search/hybrid",
            json={"query": "brake qwxyzzy vlorptk", "explain": True, "limit": 10},
        ).json()
    assert whole["explain"]["lexical_weight"] > lost["explain"]["lexical_weight"]
    assert set(lost["explain"]["dropped"]) == {"qwxyzzy", "vlorptk"}


def test_analysis_keeps_spelling_variants_and_trade_names() -> None:
    """Variant spellings and British trade names reach the catalog's words instead of
    being dropped as unknown (the shipped synonym set)."""
    from prodsearch.search.synonyms import load

    synonyms = load(None)
    catalog = {
        "vented",
        "vent",
        "brake",
        "brak",
        "disc",
        "silencer",
        "silenc",
        "rear",
        "tie",
        "rod",
        "end",
    }
    catalog |= {"engine", "engin", "mount", "radiator", "radiat", "aluminium", "stabilizer"}
    for query in ("vented disks", "back box", "track rods", "motor mounting", "aluminum radiator"):
        lexq = analyze(query, synonyms, catalog.__contains__)
        assert not lexq.dropped, (query, lexq.dropped)
    empty = analyze("disks", Synonyms(), catalog.__contains__)
    assert empty.dropped == ["disks"]  # without the synonym set the word is lost


def _case(query: str, fold: int, rows: list[Candidate], good: set[int]) -> ft.Case:
    judged = rel.JudgedQuery(query, "en", "plain", ("Good",))
    attrs: dict[int, dict[str, Any]] = {
        r.product_id: {"category": "Good" if r.product_id in good else "Bad"} for r in rows
    }
    ideal = rel.dcg([3.0] * min(len(good), rel.K))
    evidence = LexicalEvidence(words=2, dropped=1, corrected=0, best_idf=5.0)
    return ft.Case(judged, rows, evidence, 0.0, ideal, attrs, fold)


def test_tuning_scores_each_fold_with_weights_fitted_on_the_other(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # fold 0: the full-text leg is wrong when it lost a word; fold 1: it is right
    rows = [_row(i, None, i) for i in range(1, 11)]
    rows += [_row(100 + i, i, None) for i in range(1, 11)]
    cases = [
        _case("a", 0, rows, {100 + i for i in range(1, 11)}),
        _case("b", 1, rows, set(range(1, 11))),
    ]
    monkeypatch.setattr(ft, "GRID", {"lexical": (0.5, 3.0), "coverage_power": (0.0,)})
    result = ft.tune(cases, PLAIN_RRF)
    by_query = {s["query"]: s for s in result.scores}
    # fitted without fold 0 (on "b" alone): a heavy full-text leg, wrong for "a"
    assert result.per_fold[0].lexical == 3.0 and by_query["a"]["held_out"] < 0.5
    assert result.per_fold[1].lexical == 0.5 and by_query["b"]["held_out"] < 0.5
    # on both together, the better compromise is fitted, and it is what "fitted" scores
    assert by_query["a"]["fitted"] == cases[0].score(result.fitted)
