"""Catalog values as they arrive in files: each checked and normalised by the kind of the
column it goes to (the column's data type), or refused with a reason."""

from __future__ import annotations

import re
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Literal

from prodsearch.errors import RowError

Kind = Literal["int", "number", "bool", "text", "timestamp"]
# data type -> kind; columns of other types are not importable
KINDS: dict[str, Kind] = {
    "bigint": "int",
    "integer": "int",
    "smallint": "int",
    "numeric": "number",
    "real": "number",
    "double precision": "number",
    "boolean": "bool",
    "text": "text",
    "character varying": "text",
    "character": "text",
    "timestamp with time zone": "timestamp",
    "timestamp without time zone": "timestamp",
    "date": "timestamp",
}
_TRUE = {"true", "t", "1", "yes", "y"}
_FALSE = {"false", "f", "0", "no", "n"}
_INT = re.compile(r"^[+-]?\d+$")
_BIGINT_MAX = 2**63 - 1
_PRICE_MAX = Decimal("9999999999.99")
_NUMBER_MAX = Decimal("1e15")


def _int(value: Any, column: str) -> int | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, bool):
        raise RowError(f"{column} is not an integer: {value!r}")
    if isinstance(value, int):
        number = value
    elif isinstance(value, float) and value.is_integer():
        number = int(value)
    elif isinstance(value, str) and _INT.match(value.strip()):
        number = int(value.strip())
    else:
        raise RowError(f"{column} is not an integer: {value!r}")
    if abs(number) > _BIGINT_MAX:
        raise RowError(f"{column} is out of range: {value!r}")
    return number


def _number(value: Any, column: str) -> Decimal | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, bool):
        raise RowError(f"{column} is not a number: {value!r}")
    text = str(value).strip().replace("\u00a0", "").replace(" ", "")
    if "," in text and "." not in text:
        text = text.replace(",", ".")
    try:
        number = Decimal(text)
    except InvalidOperation:
        raise RowError(f"{column} is not a number: {value!r}") from None
    if not number.is_finite() or abs(number) > _NUMBER_MAX:
        raise RowError(f"{column} is not a finite number: {value!r}")
    return number


def _price(value: Any) -> Decimal | None:
    price = _number(value, "price")
    if price is None:
        return None
    if price < 0 or price > _PRICE_MAX:
        raise RowError(f"price must be a number from 0 to {_PRICE_MAX}: {value!r}")
    return price.quantize(Decimal("0.01"))


def _timestamp(value: Any, column: str) -> datetime | date | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, datetime | date):
        return value
    try:
        return datetime.fromisoformat(str(value).strip())
    except ValueError:
        raise RowError(f"{column} is not an ISO 8601 date or timestamp: {value!r}") from None


def _bool(value: Any, column: str) -> bool | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise RowError(f"{column} is not a boolean: {value!r}")


def _text(value: Any, column: str) -> str | None:
    if value is None:
        return None
    text = value if isinstance(value, str) else str(value)
    if "\x00" in text:
        raise RowError(f"NUL character in {column}")
    return text


def parse(value: Any, column: str, kind: Kind) -> Any:
    if column == "price" and kind == "number":
        return _price(value)
    if kind == "int":
        return _int(value, column)
    if kind == "number":
        return _number(value, column)
    if kind == "bool":
        return _bool(value, column)
    if kind == "timestamp":
        return _timestamp(value, column)
    return _text(value, column)
