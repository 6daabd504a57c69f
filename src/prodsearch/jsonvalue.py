"""The types of JSON values: what the ``as_dict`` serialisers return and what JSON
documents read from the database or disk (EXPLAIN plans, model configs) are.

Arrays and objects inside a value are read-only (``Sequence``, ``Mapping``: covariant, so
a ``list[str]`` is a JSON value); the top-level object a serialiser builds is a ``dict``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TypeAlias

JsonValue: TypeAlias = (
    "str | int | float | bool | Sequence[JsonValue] | Mapping[str, JsonValue] | None"
)
JsonObject: TypeAlias = "dict[str, JsonValue]"
