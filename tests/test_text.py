"""Text preparation: cleaning rules and property tests (hypothesis)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from prodsearch.catalog.text import cap, clean_text, content_hash, prepare_text

ANY_TEXT = st.text(alphabet=st.characters(codec=None), max_size=400)
ROW = st.fixed_dictionaries(
    {"name": st.one_of(st.none(), ANY_TEXT), "description": st.one_of(st.none(), ANY_TEXT)}
)


def test_html_entities_controls_and_whitespace() -> None:
    row = {
        "name": "  <b>Klocki&nbsp;hamulcowe</b>\u200b przednie\t\n ",
        "description": "<p>Great &amp; cheap</p><br/>\x00\x07 pads\u202e\ufeff",
    }
    assert prepare_text(row) == "Klocki hamulcowe przednie. Great & cheap pads"


def test_join_does_not_double_punctuation_and_skips_empty_fields() -> None:
    assert prepare_text({"name": "Pads.", "description": "Ceramic"}) == "Pads. Ceramic"
    assert prepare_text({"name": "Pads", "description": "   "}) == "Pads"
    assert prepare_text({"name": "Pads", "description": None}) == "Pads"
    assert (
        prepare_text({"name": "A", "polish_name": "B", "description": "C"}, ["name", "polish_name"])
        == "A. B"
    )


def test_cap_prefers_a_word_boundary() -> None:
    text = "word " * 1000
    capped = cap(text.strip(), 103)
    assert len(capped) <= 103 and not capped.endswith(" ") and capped.endswith("word")
    assert cap("x" * 500, 100) == "x" * 100
    assert len(prepare_text({"name": "y " * 5000}, max_chars=2000)) <= 2000


def test_encoded_tags_are_removed_too() -> None:
    assert clean_text("&lt;script&gt;alert(1)&lt;/script&gt; pads") == "alert(1) pads"
    assert clean_text("&amp;lt;b&amp;gt;bold&amp;amp;") == "bold&"


def test_content_hash_depends_on_text_model_and_mode() -> None:
    base = content_hash("pads", "m", "exact")
    assert len(base) == 32 and base == content_hash("pads", "m", "exact")
    assert base != content_hash("pads.", "m", "exact")
    assert base != content_hash("pads", "m2", "exact")
    assert base != content_hash("pads", "m", "int8")
    # field boundaries are unambiguous
    assert content_hash("ab", "c", "d") != content_hash("a", "bc", "d")


@settings(max_examples=300, deadline=None)
@given(ROW)
def test_never_raises_deterministic_idempotent(row: dict[str, str | None]) -> None:
    text = prepare_text(row)
    assert isinstance(text, str)
    assert text == prepare_text(dict(row))
    assert prepare_text({"name": text}) == text
    assert text == text.strip() and "  " not in text
    assert len(text) <= 2000
    content_hash(text, "m", "exact")


@settings(max_examples=300, deadline=None)
@given(ANY_TEXT)
def test_clean_text_removes_invisible_characters(value: str) -> None:
    cleaned = clean_text(value)
    assert clean_text(cleaned) == cleaned
    assert not any(ch in cleaned for ch in "\x00\u200b\u200e\u202e\ufeff\n\t")
