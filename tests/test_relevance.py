"""Relevance floors on judged shopper queries (deterministic: a quality test).

The shipped judged set runs against the shared 1,500-product test catalog (int8). The
floors sit a little under the measured figures, so a change that hurts relevance in
either language fails here; docs/BENCHMARKS.md has the full-catalog numbers.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import psycopg
import pytest

from prodsearch.bench import relevance as rel
from prodsearch.config import Settings
from prodsearch.search.setup import build_searcher
from tests.conftest import run_cli

# (mode, lang) -> minimum mean nDCG@10 on the 1,500-product test catalog
# measured when set: semantic 0.921 / 0.920, hybrid 0.880 / 0.923, exact = semantic;
# with the judged queries of every kind, BM25 and fitted fusion: semantic 0.911 / 0.927,
# hybrid 0.898 / 0.939, lexical 0.853 / 0.875
FLOORS = {
    ("semantic", "en"): 0.89,
    ("semantic", "pl"): 0.89,
    ("hybrid", "en"): 0.87,
    ("hybrid", "pl"): 0.91,
    ("exact", "en"): 0.89,
    ("exact", "pl"): 0.89,
}


@pytest.fixture(scope="module")
def scores(search_db: str, pg_root: Path, encoders: dict[str, Any]) -> list[rel.QueryScore]:
    settings = Settings(home=pg_root, database_url=search_db, mode="int8")
    with psycopg.connect(search_db) as conn:
        searcher = build_searcher(conn, settings, encoders["int8"])
        plain = build_searcher(conn, settings, encoders["int8"], use_query_map=False)
        queries = rel.load_queries() + rel.part_number_queries(conn, searcher.source)
        return rel.run(
            conn,
            search_db,
            searcher,
            plain,
            queries,
            ["semantic", "semantic_no_map", "hybrid", "lexical", "exact"],
        )


def test_relevance_floors(scores: list[rel.QueryScore]) -> None:
    by_lang = rel.summarise(scores, ("mode", "lang"))
    print({k: v.ndcg for k, v in by_lang.items()})
    low = {k: by_lang[k].ndcg for k, floor in FLOORS.items() if by_lang[k].ndcg < floor}
    assert not low, f"nDCG@10 under its floor: {low} (floors {FLOORS})"


# (lang, kind) -> minimum hybrid nDCG@10 for the harder kinds: spelling variants,
# British / American trade names, and words another part shares (the "motor mount",
# "brake disks", "exhaust back box" failures, through queries of the same kinds)
# measured when set: en variant 0.798, en trade 0.957, en overlap 0.934, pl overlap 1.000
KIND_FLOORS = {
    ("en", "variant"): 0.75,
    ("en", "trade"): 0.9,
    ("en", "overlap"): 0.88,
    ("pl", "overlap"): 0.9,
}


def test_hybrid_keeps_up_with_its_own_legs(scores: list[rel.QueryScore]) -> None:
    """Hybrid scores within 0.02 of the better of semantic and lexical in each language
    (0.01 at 278k, docs/BENCHMARKS.md; this catalog is 1,500 products), and holds its
    floors on the query kinds where the full-text leg used to take over."""
    gaps = rel.best_leg_gaps(scores)
    print({k: v["hybrid_minus_best"] for k, v in gaps.items()})
    assert all(gaps[(lang,)]["hybrid_minus_best"] >= -0.02 for lang in ("en", "pl")), gaps
    kinds = rel.summarise([s for s in scores if s.mode == "hybrid"], ("lang", "kind"))
    print({k: v.ndcg for k, v in kinds.items() if k in KIND_FLOORS})
    low = {k: kinds[k].ndcg for k, floor in KIND_FLOORS.items() if kinds[k].ndcg < floor}
    assert not low, f"hybrid nDCG@10 under its floor: {low} (floors {KIND_FLOORS})"


def test_query_map_and_code_match_carry_their_weight(scores: list[rel.QueryScore]) -> None:
    by_lang = rel.summarise(scores, ("mode", "lang"))
    # the learned Polish→English map lifts Polish semantic search and costs English nothing
    pl, pl_plain = (
        by_lang[("semantic", "pl")].ndcg,
        by_lang[("semantic_no_map", "pl")].ndcg,
    )
    en, en_plain = (
        by_lang[("semantic", "en")].ndcg,
        by_lang[("semantic_no_map", "en")].ndcg,
    )
    assert pl >= pl_plain + 0.03 and en >= en_plain - 0.01
    # a part number typed without separators finds its product first
    assert by_lang[("hybrid", "code")].mrr >= 0.9
    assert by_lang[("lexical", "code")].mrr >= 0.9


def test_grades_and_metrics() -> None:
    q = rel.JudgedQuery(
        "klocki golf 7 przód",
        "pl",
        "vehicle",
        ("Brake Pads",),
        vehicles=("VW Golf VII",),
        position=("front",),
    )
    exact = {
        "product_id": 1,
        "category": "Brake Pads",
        "vehicle": "VW Golf VII",
        "position": "Front",
    }
    assert q.grade(exact) == 3.0
    assert q.grade({**exact, "position": "Rear"}) == 2.0
    assert q.grade({**exact, "vehicle": "VW Passat B8", "position": None}) == 1.0
    assert q.grade({**exact, "category": "Brake Discs"}) == 0.0
    ideal = rel.dcg([3.0] * 10)
    s = rel.score(q, "hybrid", [1, 2], {1: exact, 2: {**exact, "position": "Rear"}}, ideal)
    assert s.mrr == 1.0 and s.precision == 0.2
    assert s.ndcg == pytest.approx((3 + 2 / 1.5849625) / ideal, rel=1e-6)


def test_regressions_between_runs(scores: list[rel.QueryScore], tmp_path: Path) -> None:
    path = tmp_path / "before.json"
    rel.save(path, scores, {})
    worse = [
        rel.QueryScore(**{**s.__dict__, "ndcg": 0.0}) if s.query == "brake pads" else s
        for s in scores
    ]
    means, regressions = rel.regressions(path, worse)
    assert {q for _m, q, _b, _n in regressions} == {"brake pads"}
    assert means[("semantic", "en")][1] <= means[("semantic", "en")][0]


def test_bench_relevance_command(search_db: str, pg_root: Path, tmp_path: Path) -> None:
    """What a user types: a run saved, then a second run compared with it."""
    env = {"DATABASE_URL": search_db, "PRODSEARCH_HOME": str(pg_root), "PRODSEARCH_MODE": "int8"}
    saved = tmp_path / "run.json"
    first = run_cli(
        "bench", "relevance", "--modes", "hybrid", "--save", str(saved), "--json", env=env
    )
    assert first.returncode == 0, first.stderr
    summary = json.loads(first.stdout)
    langs = {row["group"][1] for row in summary["by_lang"]}
    assert {"en", "pl", "code"} <= langs and summary["meta"]["query_map"] is True
    second = run_cli(
        "bench", "relevance", "--modes", "hybrid", "--by-kind", "--compare", str(saved), env=env
    )
    assert second.returncode == 0, second.stderr
    assert "no query lost more than 0.1 nDCG" in second.stdout and "no_diacritics" in second.stdout
    bad = run_cli("bench", "relevance", "--queries", str(tmp_path / "none.tsv"), env=env)
    assert bad.returncode != 0 and "Traceback" not in bad.stderr


def test_bench_polish_command(search_db: str, pg_root: Path) -> None:
    """`prodsearch bench polish`: every approach scored per language, with its cost."""
    env = {"DATABASE_URL": search_db, "PRODSEARCH_HOME": str(pg_root), "PRODSEARCH_MODE": "int8"}
    res = run_cli("bench", "polish", "--json", env=env)
    assert res.returncode == 0, res.stderr[-3000:]
    out = json.loads(res.stdout)
    approaches = {(r["approach"], r["synonyms"], r["lang"]): r for r in out["rows"]}
    assert len(approaches) == 4 * 2 * 2 and out["products"] > 1000
    assert all(0 <= r["ndcg@10"] <= 1 and r["queries"] > 0 for r in approaches.values())
    # the query map exists for Polish: it must beat English-only vectors on Polish queries
    assert (
        approaches[("query map", False, "pl")]["ndcg@10"]
        > approaches[("english only", False, "pl")]["ndcg@10"]
    )
    assert out["cost"]["polish vectors"]["extra_bytes_per_product"] == 4 * 384 + 8


# constraint queries (a price, a side, an engine, a brand, a vehicle; graded 1 + the
# constraints met), on the 1,500-product catalog: (mode, lang) -> (nDCG@10, constraint
# precision) floors. The catalog holds fewer than 10 products meeting most queries'
# constraints, so the precision a top 10 can reach is low here (0.25 / 0.24 measured when
# set, nDCG 0.984 / 0.971 semantic, 0.985 / 0.980 hybrid); at 278k both are 1.000
# (docs/BENCHMARKS.md).
CONSTRAINT_FLOORS = {
    ("semantic", "en"): (0.95, 0.22),
    ("semantic", "pl"): (0.95, 0.22),
    ("hybrid", "en"): (0.95, 0.22),
    ("hybrid", "pl"): (0.95, 0.22),
}


def test_constraint_queries_meet_their_constraints(scores: list[rel.QueryScore]) -> None:
    kinds = rel.summarise(scores, ("mode", "lang", "kind"))
    got = {
        (m, lang): (f.ndcg, f.constraint_precision)
        for (m, lang, kind), f in kinds.items()
        if kind == "constraint"
    }
    print(got)
    low = {
        k: got[k]
        for k, (ndcg, precision) in CONSTRAINT_FLOORS.items()
        if got[k][0] < ndcg or (got[k][1] or 0) < precision
    }
    assert not low, f"constraint queries under their floors: {low} ({CONSTRAINT_FLOORS})"
