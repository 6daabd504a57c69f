"""Constraints shoppers type — a price, a side, an engine, a brand, a vehicle — found in the
query, taken out of its text and applied: parsing in both languages, and search against
the real catalog (strict matches first, relaxed and reported when too few exist)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psycopg
import pytest

from prodsearch.db.names import DEMO_CATALOG
from prodsearch.search.constraints import CatalogVocabulary, load_position_words
from tests.test_api import make_client

VOCABULARY = CatalogVocabulary(
    brands={
        "Bosch": 2600,
        "Lemförder": 468,
        "Mann-Filter": 382,
        "Febi Bilstein": 2627,
        "Gates": 330,
    },
    engines=["2.0 TDI", "1.4 TSI", "1.6 BlueHDi", "2.0 d", "B4"],
    position_values=["Front", "Rear", "Front Left", "Rear Right", "Left", "Right"],
    currency="PLN",
    position_words=load_position_words(),
    word_products=lambda w: {"gates": 2000, "bosch": 2600}.get(w, 0),
)

PRICES = [  # query, price_min, price_max, what is left of the text
    ("cheap wiper blades under 40 zl", None, 40, "wiper blades"),
    ("wycieraczki do 100 zł", None, 100, "wycieraczki"),
    ("klocki poniżej 100", None, 100, "klocki"),
    ("klocki ponizej 100 pln", None, 100, "klocki"),
    ("olej max 100 zl", None, 100, "olej"),
    ("tarcze od 50 do 100", 50, 100, "tarcze"),
    ("tarcze od 50 zł", 50, None, "tarcze"),
    ("brake discs under 40", None, 40, "brake discs"),
    ("shocks below 150", None, 150, "shocks"),
    ("spark plugs less than 40", None, 40, "spark plugs"),
    ("alternator over 2000", 2000, None, "alternator"),
    ("amortyzator 40-80 zł", 40, 80, "amortyzator"),
    ("amortyzator 40 - 80zł", 40, 80, "amortyzator"),
    ("battery between 200 and 400", 200, 400, "battery"),
    ("akumulator powyżej 300 zł", 300, None, "akumulator"),
    ("filtr 19,99 zł", None, 19.99, "filtr"),
    ("pads up to 120 pln", None, 120, "pads"),
]
NOT_PRICES = [  # a number that is a size, a generation or a code stays text
    "klocki do golfa 7",
    "akumulator 12v 60ah",
    "olej 5w30 5l",
    "klocki 40",
    "filtr 0 986 433 218",
    "zarowka h7 55w",
    "647-378-2883",
    "bkr6ein-40",
    "p 40/743 do 7",
    "filtr 91 820 40",
    "under 99999999999999999999",
]
SIDES = [
    ("łożysko koła tylne prawe", ["rear", "right"]),
    ("lozysko kola tylne prawe", ["rear", "right"]),
    ("tarcze hamulcowe przód", ["front"]),
    ("tarcze przod", ["front"]),
    ("zacisk hamulcowy przedni lewy", ["front", "left"]),
    ("reflektor lewa", ["left"]),
    ("wahacz z tyłu po prawej", ["rear", "right"]),
    ("rear left brake caliper", ["rear", "left"]),
    ("front shocks", ["front"]),
    ("amortyzatory tył", ["rear"]),
    ("lampa tylna", ["rear"]),
]


@pytest.mark.parametrize(("query", "lo", "hi", "rest"), PRICES)
def test_price_phrasings_in_both_languages(
    query: str, lo: float | None, hi: float | None, rest: str
) -> None:
    u = VOCABULARY.understand(query)
    assert (u.price_min, u.price_max) == (lo, hi), u
    assert u.residual == rest and u.currency == "PLN"


@pytest.mark.parametrize("query", NOT_PRICES)
def test_a_size_a_generation_or_a_code_is_no_price(query: str) -> None:
    u = VOCABULARY.understand(query)
    assert (u.price_min, u.price_max) == (None, None) and u.residual == query, u


@pytest.mark.parametrize(("query", "sides"), SIDES)
def test_side_words_with_polish_inflections(query: str, sides: list[str]) -> None:
    u = VOCABULARY.understand(query)
    assert list(u.positions) == sides, u
    assert not any(w in u.residual.lower() for w in ("tyl", "przod", "lew", "praw", "rear"))


def test_engines_brands_and_words_that_are_both() -> None:
    u = VOCABULARY.understand("wahacz lemforder 2.0tdi")
    assert (u.brand, u.engine, u.residual) == ("Lemförder", "2.0 TDI", "wahacz")
    assert VOCABULARY.understand("filtr mann").brand == "Mann-Filter"  # a brand's first word
    assert VOCABULARY.understand("febi bilstein 1,4 tsi").as_dict() == {
        "engine": "1.4 TSI",
        "brand": "Febi Bilstein",
    }
    # "gates" is in 2,000 products' texts and the brand has 330: the word stays text
    gates = VOCABULARY.understand("timing belt gates")
    assert gates.brand is None and gates.residual == "timing belt gates"
    assert gates.decisions[0].taken_as == "text"
    # nothing but constraints: the brand is the product words
    only = VOCABULARY.understand("bosch do 100 zł")
    assert (only.brand, only.price_max, only.residual) == ("Bosch", 100, "bosch")
    # "b4" (two characters) is too short to be an engine on its own
    assert VOCABULARY.understand("b4 pads").engine is None


def _post(client: Any, path: str, body: dict[str, Any]) -> dict[str, Any]:
    res = client.post(path, json=body)
    assert res.status_code == 200, res.text
    return dict(res.json())


def _attributes(url: str, ids: list[int]) -> dict[int, tuple[Any, ...]]:
    with psycopg.connect(url) as c:
        rows = c.execute(
            f"SELECT product_id, price, position, brand, category, vehicle FROM {DEMO_CATALOG}"
            " WHERE product_id = ANY(%s)",
            (ids,),
        ).fetchall()
    return {r[0]: r[1:] for r in rows}


@pytest.mark.parametrize("path", ["/search/semantic", "/search/hybrid"])
def test_a_price_filters_and_never_matches_a_part_number(
    search_db: str, pg_root: Path, path: str
) -> None:
    with make_client(search_db, pg_root) as client:
        body = _post(client, path, {"query": "cheap wiper blades under 40 zl", "explain": True})
        assert body["understood"] == {"price_max": 40, "currency": "PLN", "cheap": True}
        assert body["relaxed"] == [] and body["results"]
        attrs = _attributes(search_db, [h["product_id"] for h in body["results"]])
        assert all(float(attrs[h["product_id"]][0]) <= 40 for h in body["results"])
        assert body["results"][0]["category"] == "Wiper Blades"
        explain = body["explain"]
        assert "40" not in explain["semantic_text"] and "40" in explain["removed"]
        assert "40" not in explain.get("lexical_query", "")
        # explicit filters win; understanding can be turned off
        wide = _post(
            client,
            path.replace("semantic", "filtered"),
            {"query": "wiper blades under 40 zl", "filters": {"price_max": 10_000}},
        )
        assert "price_max" not in wide.get("understood", {})  # none applied: no field
        off = _post(client, path, {"query": "wiper blades under 40 zl", "understand": False})
        assert "understood" not in off


@pytest.mark.parametrize("path", ["/search/semantic", "/search/hybrid"])
def test_sides_filter_in_either_language(search_db: str, pg_root: Path, path: str) -> None:
    with make_client(search_db, pg_root) as client:
        for query in ("łożysko koła tylne", "rear wheel bearing", "tarcze hamulcowe przod"):
            body = _post(client, path, {"query": query, "limit": 5})
            side = body["understood"]["position"][0]
            attrs = _attributes(search_db, [h["product_id"] for h in body["results"]])
            strict = body["strict_matches"]
            assert strict >= 3, (query, body)
            for hit in body["results"][:strict]:
                assert side in (attrs[hit["product_id"]][1] or "").lower(), (query, hit)
                assert hit["constraints_met"] == ["position"]


@pytest.mark.parametrize("path", ["/search/semantic", "/search/hybrid"])
def test_an_over_constrained_query_is_relaxed_and_says_so(
    search_db: str, pg_root: Path, path: str
) -> None:
    with psycopg.connect(search_db) as c:  # a brand that makes no wiper blades
        (brand,) = c.execute(
            f"SELECT brand FROM {DEMO_CATALOG} WHERE brand IS NOT NULL GROUP BY brand"
            " HAVING bool_and(category <> 'Wiper Blades') ORDER BY count(*) DESC LIMIT 1"
        ).fetchone()
    with make_client(search_db, pg_root) as client:
        body = _post(client, path, {"query": f"wiper blades {brand}", "limit": 10})
        assert body["understood"]["brand"] == brand
        assert body["relaxed"] == ["brand"] and body["strict_matches"] == 0
        assert [h["category"] for h in body["results"][:5]] == ["Wiper Blades"] * 5
        # a price nothing meets: relaxed too, never an empty page
        cheap = _post(client, path, {"query": "alternator under 1 zł", "limit": 10})
        assert cheap["relaxed"] == ["price"] and cheap["results"], cheap


@pytest.mark.parametrize(
    "query", ["ïĒz\U000eb4a80ÛLģpG½", "½ do ¾ zł", "٣ under ٤٠", "under", "do zł", "-"]
)
def test_digits_of_other_scripts_and_fractions_are_text(query: str) -> None:
    """What fuzzing found: "½" folds to "1/2", which is no number of a price."""
    u = VOCABULARY.understand(query)
    assert u.price_max is None and u.price_min is None, u


def test_matched_words_are_offsets_into_plain_text(search_db: str, pg_root: Path) -> None:
    with make_client(search_db, pg_root) as client:
        body = _post(client, "/search/hybrid", {"query": "tarcze hamulcowe", "limit": 5})
        marked = 0
        for hit in body["results"]:
            title, marks = hit["title"], hit["highlight"]["title"]
            words = [title[a:b].lower() for a, b in marks]
            assert all(w.startswith(("tarcz", "hamulc")) for w in words), (title, words)
            marked += bool(words)  # an English title without a Polish name has none
            snippet = hit["highlight"].get("snippet")
            if snippet:
                assert len(snippet) <= 165
                for a, b in hit["highlight"]["snippet_matches"]:
                    assert snippet[a:b].lower().startswith(("tarcz", "hamulc")), snippet
        assert marked >= 3
        # a search its filters leave empty answers with completions of the query
        empty = _post(
            client,
            "/search/filtered",
            {"query": "klocki hamulcowe", "filters": {"brand": "No Such Brand"}},
        )
        assert empty["results"] == [] and empty["suggestions"]
        assert empty["suggestions"][0]["text"].startswith("klocki hamulcowe")


def test_a_removed_chip_is_a_constraint_not_applied(search_db: str, pg_root: Path) -> None:
    with make_client(search_db, pg_root) as client:
        body = {"query": "tylne klocki hamulcowe do 100 zł", "limit": 10}
        both = _post(client, "/search/semantic", body)
        assert set(both["understood"]) == {"price_max", "currency", "position"}
        no_price = _post(client, "/search/semantic", {**body, "ignore": ["price"]})
        assert set(no_price["understood"]) == {"position"}
        bad = client.post("/search/semantic", json={**body, "ignore": ["colour"]})
        assert bad.status_code == 422
