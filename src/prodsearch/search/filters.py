"""Search filters over the configured filterable columns, typed by the source table.

For each filterable column: a text column ``c`` takes ``"c": str | [str]`` (any of);
a numeric column takes ``"c_min"`` / ``"c_max"`` (inclusive); a boolean column takes
``"c": bool``. With the default catalog: ``category``, ``brand``, ``price_min``,
``price_max``, ``in_stock``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from psycopg import sql

from prodsearch.catalog.source import Source
from prodsearch.errors import FilterError
from prodsearch.jsonvalue import JsonValue
from prodsearch.search.queries import SqlParams

# filter key -> value, as a request gives them (checked by condition)
Filters = Mapping[str, JsonValue]

# numeric column types, and the type a bound is compared in: one the column's index serves
_BOUND_TYPE = {
    "numeric": "numeric",
    "integer": "bigint",
    "bigint": "bigint",
    "smallint": "bigint",
    "real": "float8",
    "double precision": "float8",
}
_INTEGERS = {"integer", "bigint", "smallint"}
_BIGINT = 2**63 - 1


def _bound(value: float, kind: str, dtype: str) -> float | int:
    """A numeric bound as the column's type compares it: for an integer column, the
    tightest whole number with the same meaning (price_max 12.5 -> 12), within bigint."""
    if dtype not in _INTEGERS:
        return value
    whole = math.ceil(value) if kind == "min" else math.floor(value)
    return max(-_BIGINT, min(_BIGINT, whole))


def allowed_keys(source: Source) -> dict[str, tuple[str, str]]:
    """filter key -> (column, kind) where kind is one of any, min, max, bool."""
    keys: dict[str, tuple[str, str]] = {}
    for col in source.filter_columns:
        dtype = source.columns.get(col, "text")
        if dtype == "boolean":
            keys[col] = (col, "bool")
        elif dtype in _BOUND_TYPE:
            keys[f"{col}_min"] = (col, "min")
            keys[f"{col}_max"] = (col, "max")
        else:
            keys[col] = (col, "any")
    return keys


def condition(source: Source, filters: Filters | None) -> tuple[sql.Composable, SqlParams]:
    """SQL condition (on alias ``s``) and its parameters; raises FilterError on bad input."""
    if not filters:
        return sql.SQL("TRUE"), {}
    allowed = allowed_keys(source)
    unknown = sorted(set(filters) - set(allowed))
    if unknown:
        raise FilterError(
            f"unknown filter key(s) {', '.join(unknown)}; allowed: {', '.join(allowed)}"
        )
    parts: list[sql.Composable] = []
    params: SqlParams = {}
    for i, (key, value) in enumerate(filters.items()):
        if value is None:
            continue
        col, kind = allowed[key]
        name = f"f{i}"
        ident = sql.Identifier("s", col)
        if kind == "any":
            given = value if isinstance(value, list) else [value]
            values = [v for v in given if isinstance(v, str)]
            if not values or len(values) != len(given):
                raise FilterError(f"filter {key} takes a string or a list of strings")
            if any("\x00" in v for v in values):
                raise FilterError(f"filter {key}: text may not contain NUL characters")
            parts.append(sql.SQL("{}::text = ANY({})").format(ident, sql.Placeholder(name)))
            params[name] = values
        elif kind == "bool":
            if not isinstance(value, bool):
                raise FilterError(f"filter {key} takes true or false")
            parts.append(sql.SQL("{} = {}").format(ident, sql.Placeholder(name)))
            params[name] = value
        else:
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise FilterError(f"filter {key} takes a number")
            if not math.isfinite(value):
                raise FilterError(f"filter {key} takes a finite number")
            dtype = source.columns[col]  # numeric: allowed_keys made it a range key
            op = sql.SQL(">=" if kind == "min" else "<=")
            # the bound in the column's own type: compared as float8, the column would be
            # cast for every row — no index, and no statistics for the planner's estimate
            parts.append(
                sql.SQL("{} {} {}::{}").format(
                    ident, op, sql.Placeholder(name), sql.SQL(_BOUND_TYPE[dtype])
                )
            )
            params[name] = _bound(value, kind, dtype)
    if not parts:
        return sql.SQL("TRUE"), {}
    return sql.SQL(" AND ").join(parts), params


def parse_pairs(source: Source, pairs: list[str]) -> dict[str, JsonValue]:
    """Command-line filters: ``["category=Brake Pads", "price_max=200", "in_stock=true"]``
    → the typed filters :func:`condition` takes (a text key given twice matches either)."""
    allowed = allowed_keys(source)
    filters: dict[str, JsonValue] = {}
    texts: dict[str, list[str]] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        key = key.strip()
        if not sep or key not in allowed:
            raise FilterError(f"{pair!r}: use KEY=VALUE with KEY one of {', '.join(allowed)}")
        kind = allowed[key][1]
        if kind == "bool":
            if value.strip().lower() not in ("true", "false"):
                raise FilterError(f"{pair!r}: {key} takes true or false")
            filters[key] = value.strip().lower() == "true"
        elif kind in ("min", "max"):
            try:
                filters[key] = float(value)
            except ValueError:
                raise FilterError(f"{pair!r}: {key} takes a number") from None
        else:
            texts.setdefault(key, []).append(value)
    return {**filters, **texts}
