"""Text preparation: the one function that turns a product row into the text we embed.

``prepare_text(row, fields)`` joins the configured fields (default ``name`` and
``description``) as ``"name. description"``, after cleaning each one:

1. HTML tags removed (``<br>``, ``<p>`` … become spaces) and entities decoded (``&amp;`` → ``&``);
2. Unicode normalised to NFC; control, format (zero-width, bidi) and private-use
   characters removed; unpaired surrogates removed;
3. whitespace collapsed to single spaces and stripped;
4. the joined text cleaned once more (markup can span fields) and capped at
   ``max_chars`` characters (on a word boundary when one is near): the model truncates
   at 256 tokens anyway, so longer text is wasted work.

A field that is empty after cleaning is skipped; a trailing ``.``, ``!`` or ``?`` on a field
is not doubled. The result is deterministic and idempotent:
``prepare_text({"name": prepare_text(row)}, ["name"]) == prepare_text(row)``.

``content_hash(text, model, mode)`` is what sync stores beside each vector: a change of the
text, the model or the encoder mode changes the hash, so the row is re-embedded.
"""

from __future__ import annotations

import hashlib
import html
import re
import unicodedata
from collections.abc import Mapping, Sequence
from typing import Any

DEFAULT_FIELDS: tuple[str, ...] = ("name", "description")
DEFAULT_MAX_CHARS = 2000

_TAG = re.compile(r"<[^<>]{0,2000}>")
_SPACE = re.compile(r"\s+")
# Categories removed: Cc control, Cf format (zero-width, bidi marks, BOM), Co private use,
# Cs surrogates, Cn unassigned. Whitespace controls (\t \n \r …) become spaces first.
_DROP_CATEGORIES = frozenset({"Cc", "Cf", "Co", "Cs", "Cn"})


def clean_text(value: Any) -> str:
    """One field, cleaned: no HTML, no control/zero-width characters, single spaces.

    Repeated until nothing changes, so doubly escaped markup (``&amp;lt;b&amp;gt;``) is
    removed too and cleaning stays idempotent.
    """
    if value is None:
        return ""
    text = str(value)
    for _ in range(8):
        cleaned = _clean_once(text)
        if cleaned == text:
            break
        text = cleaned
    return text


def _clean_once(text: str) -> str:
    if "<" in text:
        text = _TAG.sub(" ", text)
    if "&" in text:
        text = html.unescape(text)
        if "<" in text:  # entities may have encoded tags: &lt;b&gt;
            text = _TAG.sub(" ", text)
    text = unicodedata.normalize("NFC", text)
    text = _SPACE.sub(" ", text)
    if not text.isprintable():
        text = "".join(
            ch for ch in text if unicodedata.category(ch) not in _DROP_CATEGORIES or ch == " "
        )
        text = unicodedata.normalize("NFC", text)
    return _SPACE.sub(" ", text).strip()


def cap(text: str, max_chars: int) -> str:
    """Cut to at most ``max_chars``, on a word boundary when one is in the last 10%."""
    if len(text) <= max_chars:
        return text
    cut = text[:max_chars]
    space = cut.rfind(" ")
    if space >= max_chars * 0.9:
        cut = cut[:space]
    return cut.rstrip()


def prepare_text(
    row: Mapping[str, Any],
    fields: Sequence[str] = DEFAULT_FIELDS,
    max_chars: int = DEFAULT_MAX_CHARS,
) -> str:
    """The text to embed for one product row (see the module docstring)."""
    parts: list[str] = []
    for field in fields:
        cleaned = clean_text(row.get(field))
        if cleaned:
            parts.append(cleaned)
    text = ""
    for part in parts:
        if not text:
            text = part
        elif text[-1] in ".!?":
            text = f"{text} {part}"
        else:
            text = f"{text}. {part}"
    # Joining can form markup across fields ("<" + ". " + ">"); cleaning the whole again
    # (and after the cut) keeps the result a fixed point: prepare(prepare(x)) == prepare(x).
    return clean_text(cap(clean_text(text), max_chars))


def content_hash(text: str, model: str, mode: str, max_tokens: int | None = None) -> str:
    """Hex digest over (model, mode, prepared text), and the token cap when it cuts below
    the model's own limit (:attr:`Encoder.hash_cap`): 32 hex characters."""
    digest = hashlib.blake2b(digest_size=16)
    pieces = [model, mode, text] + ([] if max_tokens is None else [f"max_tokens={max_tokens}"])
    for piece in pieces:
        data = piece.encode("utf-8", "surrogatepass")
        digest.update(len(data).to_bytes(8, "little"))
        digest.update(data)
    return digest.hexdigest()
