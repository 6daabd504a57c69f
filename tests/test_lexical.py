"""The lexical analysis (Polish + English), synonyms, vehicles, query building."""

from __future__ import annotations

from pathlib import Path

import pytest

from prodsearch.catalog.lexical import document_terms, fold, forms, tokens
from prodsearch.errors import ConfigError
from prodsearch.search import synonyms as syn
from prodsearch.search.lexquery import analyze, unknown_words
from prodsearch.search.vehicles import VehicleIndex


def _lexemes(text: str) -> set[str]:
    return set(document_terms(text).split())


def test_fold_and_tokens() -> None:
    assert fold("Sprężyna ŁOŻYSKO żarowa") == "sprezyna lozysko zarowa"
    assert tokens("Klocki do VW Golf VII (2012-2020)") == [
        "klocki",
        "vw",
        "golf",
        "7",
        "2012",
        "2020",
    ]


@pytest.mark.parametrize(
    ("query", "document"),
    [
        ("tarcze hamulcowe", "Tarcza hamulcowa przednia"),
        ("sprezyna zawieszenia", "Sprężyna zawieszenia tylna"),
        ("świece żarowe", "Świeca żarowa Bosch"),
        ("swiece zarowe", "Świeca żarowa Bosch"),
        ("amortyzatory", "Amortyzator przedni"),
        ("klocki do golfa 7", "Klocki hamulcowe do VW Golf VII"),
        ("brake pads", "Brake Pad set"),
        ("łożyska koła", "Zestaw łożyska koła"),
    ],
)
def test_query_words_reach_document_lexemes(query: str, document: str) -> None:
    """Every query word shares a lexeme with the document, with or without diacritics."""
    doc = _lexemes(document)
    for word in tokens(query):
        assert set(forms(word)) & doc, (word, sorted(doc))


def test_synonym_file_format(tmp_path: Path) -> None:
    s = syn.parse("# c\nrotor, brake disc, tarcza hamulcowa\ndynamo => alternator\n")
    match = s.match(tokens("rotors for golf"), 0)
    assert match.length == 1 and ("brake", "disc") in match.alternatives
    assert match.canonical == ("rotor",)
    one_way = s.match(tokens("dynamo"), 0)
    assert one_way.alternatives == [("alternator",)]
    assert s.match(tokens("alternator"), 0).length == 0  # one way only
    with pytest.raises(ConfigError, match="line 1"):
        syn.parse("a, b =>\n")
    with pytest.raises(ConfigError, match="cannot read"):
        syn.load(tmp_path / "missing.txt")
    assert syn.load().count > 100  # the shipped set


def test_query_analysis_synonyms_typos_and_unknown_words() -> None:
    s = syn.load()
    vocab = _lexemes("Control Arm Wahacz Alternator Golf 7 front brake pads klocki hamulcowe")
    known = vocab.__contains__
    q = analyze("wishbone golf vii", s, known)
    assert "control arm" in q.expanded and q.canonical == ["control arm"]
    assert q.strict.count("&") >= 2 and "wishbone" not in q.strict  # unknown alternative dropped
    assert unknown_words("cheap alternater", s, known) == ["cheap", "alternater"]
    q = analyze("cheap alternater", s, known, {"alternater": "alternator"})
    assert q.corrected == {"alternater": "alternator"} and q.dropped == ["cheap"]
    assert "alternator" in q.semantic_text("cheap alternater")
    assert analyze("xyz", s, known).strict == ""


def test_vehicle_detection() -> None:
    index = VehicleIndex(
        [
            "VW Golf VII",
            "VW Golf VIII",
            "VW Passat B8",
            "BMW 3 F30",
            "Skoda Octavia III",
            "Mazda 3 BM",
            "Mercedes C W205",
            "Peugeot 308 II",
        ]
    )
    assert index.find("klocki do golfa 7") == ["VW Golf VII"]
    assert index.find("golf vii brake pads") == ["VW Golf VII"]
    assert set(index.find("golf")) == {"VW Golf VII", "VW Golf VIII"}
    assert index.find("tarcze passat b8") == ["VW Passat B8"]
    assert index.find("b8") == ["VW Passat B8"]
    assert index.find("filtr do bmw f30") == ["BMW 3 F30"]
    assert index.find("octavia 3") == ["Skoda Octavia III"]  # not BMW 3 / Mazda 3
    assert index.find("mazda 3") == ["Mazda 3 BM"]
    assert index.find("w205") == ["Mercedes C W205"]
    assert index.find("brake pads") == []
