"""Search-as-you-type: completions from the catalog's product types (English and Polish),
brands and vehicles, found without diacritics and through typos, kept in step by
``embed`` and ``watch``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psycopg
from fastapi.testclient import TestClient

from prodsearch.catalog import generate
from prodsearch.catalog.source import load_source
from prodsearch.config import Settings
from prodsearch.db.names import DEMO_CATALOG
from prodsearch.embedding.sync import SyncOptions, sync
from prodsearch.suggest.phrases import type_phrase
from prodsearch.watch import capture
from prodsearch.watch.worker import WatchOptions, Worker
from tests.test_api import make_client


def _suggest(client: TestClient, q: str, limit: int = 8) -> dict[str, Any]:
    res = client.get("/suggest", params={"q": q, "limit": limit})
    assert res.status_code == 200, res.text
    return dict(res.json())


def _texts(body: dict[str, Any]) -> list[str]:
    return [s["text"] for s in body["suggestions"]]


def test_a_product_type_is_the_names_shared_leading_words() -> None:
    names = [
        "Klocki hamulcowe przednie Bosch do VW Golf VII",
        "Klocki hamulcowe tylne ATE do Skoda Octavia III",
        "Bosch Klocki hamulcowe 0 986 494",
        "Zestaw klocków ATE",
    ]
    assert type_phrase(names, ["Bosch", "ATE", "Bosch", "ATE"]) == "klocki hamulcowe"
    assert type_phrase(["Engine Oil 5W-30 5L for Golf"] * 3, [None] * 3) == "engine oil"
    assert type_phrase(["a b", "c d", "e f"], [None] * 3) is None


def test_prefixes_without_diacritics_and_with_typos(search_db: str, pg_root: Path) -> None:
    with make_client(search_db, pg_root) as client:
        body = _suggest(client, "sprezy")
        assert _texts(body)[0] == "sprężyna zawieszenia" and not body["corrected"]
        counts = [s["products"] for s in body["suggestions"]]
        assert counts == sorted(counts, reverse=True) and counts[0] > 0
        assert _texts(_suggest(client, "klocki ham"))[0] == "klocki hamulcowe"
        assert _texts(_suggest(client, "brake p"))[0] == "brake pads"
        typo = _suggest(client, "klocki hamulcowr")
        assert typo["corrected"] and _texts(typo)[0] == "klocki hamulcowe"
        assert "tarcza hamulcowa" in _texts(_suggest(client, "tarcze"))  # an inflection
        # a word inside the phrase, a brand, a vehicle
        assert any("Bosch" in t for t in _texts(_suggest(client, "bosc")))
        assert any(t.startswith("VW Golf") for t in _texts(_suggest(client, "golf")))
        assert _suggest(client, "xqzwv")["suggestions"] == []
        assert len(_suggest(client, "k", limit=3)["suggestions"]) == 3
        assert _suggest(client, " \x85 ")["suggestions"] == []  # only spaces typed so far
        for bad in ({"q": ""}, {"q": "x" * 101}, {"q": "a", "limit": 0}, {"q": "a", "limit": 21}):
            assert client.get("/suggest", params=bad).status_code == 422, bad
        # the characters a LIKE pattern would read as wildcards are text
        assert client.get("/suggest", params={"q": "%_\\"}).json()["suggestions"] == []


def test_a_new_brand_is_suggested_once_watch_syncs_it(
    conn: psycopg.Connection[Any], settings: Settings, db_url: str, encoders: dict[str, Any]
) -> None:
    enc = encoders["int8"]
    generate.load(conn, 200, seed=77)
    conn.commit()
    sync(settings, SyncOptions(mode="int8"), encoder=enc)
    capture.install(conn, load_source(conn, settings), settings)
    with make_client(db_url, settings.home) as client:
        assert _suggest(client, "zyntr")["suggestions"] == []
        conn.execute(
            f"INSERT INTO {DEMO_CATALOG} (product_id, name, polish_name, category, brand, price,"
            " in_stock) VALUES (900001, 'Zyntrax Tow Bar for VW Golf VII',"
            " 'Hak holowniczy Zyntrax do VW Golf VII', 'Tow Bars', 'Zyntrax', 900, true)"
        )
        conn.commit()
        totals = Worker(
            settings,
            WatchOptions.from_settings(settings, nice=0, once=True, reconcile_s=0),
            encoder=enc,
        ).run()
        assert totals.written == 1
        brand = _suggest(client, "zyntr")
        assert _texts(brand)[0] == "Zyntrax" and brand["suggestions"][0]["products"] == 1
        assert "tow bars" in _texts(_suggest(client, "tow b"))
        assert "hak holowniczy" in _texts(_suggest(client, "hak hol"))
