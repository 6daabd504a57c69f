"""Streaming readers for catalog files: CSV/TSV, JSON Lines, Parquet.

Each yields ``Record(line, data, error)``: ``line`` is the 1-based line (CSV/JSONL, the
header being line 1 in CSV) or row number (Parquet); ``error`` is set when the record
cannot be read at all (invalid UTF-8, invalid JSON, wrong field count). Files are read
incrementally: memory does not grow with the file size.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from prodsearch.errors import ProdsearchError

FORMATS = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".parquet": "parquet",
    ".pq": "parquet",
}


@dataclass
class Record:
    line: int
    data: dict[str, Any] = field(default_factory=dict)
    error: str | None = None


def detect_format(path: Path, fmt: str | None) -> str:
    if fmt:
        fmt = fmt.lower()
        if fmt not in set(FORMATS.values()):
            raise ProdsearchError(f"unknown format {fmt!r}: use csv, tsv, jsonl or parquet")
        return fmt
    try:
        return FORMATS[path.suffix.lower()]
    except KeyError:
        raise ProdsearchError(
            f"cannot tell the format of {path.name} from its extension; "
            "pass --format csv|tsv|jsonl|parquet"
        ) from None


def _has_bad_utf8(value: str) -> bool:
    # surrogateescape decodes each invalid byte to U+DC80..U+DCFF
    return any("\udc80" <= ch <= "\udcff" for ch in value)


MAX_LINE_BYTES = 16 * 1024 * 1024  # a longer line is skipped and rejected: memory stays bounded
_TOO_LONG = "\x00line too long\x00"  # stands in for a skipped line (real text holds no NUL)


def _bounded_lines(raw: BinaryIO, limit: int = MAX_LINE_BYTES) -> Iterator[str]:
    """The file's lines as text, each read at most ``limit`` bytes at a time: a longer
    line is skipped to its end and replaced by a marker the reader rejects."""
    first = True
    while True:
        line = raw.readline(limit + 1)
        if not line:
            return
        if first and line.startswith(b"\xef\xbb\xbf"):
            line = line[3:]
        first = False
        if len(line) > limit and not line.endswith(b"\n"):
            while (rest := raw.readline(1 << 20)) and not rest.endswith(b"\n"):
                pass
            yield _TOO_LONG + "\n"
            continue
        yield line.decode("utf-8", "surrogateescape")


def read_csv(path: Path, delimiter: str = ",") -> Iterator[Record]:
    csv.field_size_limit(MAX_LINE_BYTES)
    with path.open("rb") as raw:
        reader = csv.reader(_bounded_lines(raw), delimiter=delimiter)
        try:
            header = next(reader)
        except StopIteration:
            return
        if any(_has_bad_utf8(h) for h in header):
            raise ProdsearchError(f"{path.name}: the header line is not valid UTF-8")
        header = [h.strip() for h in header]
        while True:
            start = reader.line_num + 1
            try:
                values = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                yield Record(start, error=f"malformed CSV: {exc}")
                continue
            if not values or (len(values) == 1 and not values[0].strip()):
                continue  # blank line
            if _TOO_LONG in values[-1]:
                yield Record(start, error=f"line longer than {MAX_LINE_BYTES} bytes: skipped")
                continue
            if len(values) != len(header):
                yield Record(
                    start,
                    dict(zip(header, values, strict=False)),
                    error=f"expected {len(header)} fields, found {len(values)}",
                )
                continue
            bad = [h for h, v in zip(header, values, strict=True) if _has_bad_utf8(v)]
            data = dict(zip(header, values, strict=True))
            if bad:
                yield Record(start, data, error=f"invalid UTF-8 in {', '.join(bad)}")
            else:
                yield Record(start, data)


def read_jsonl(path: Path) -> Iterator[Record]:
    with path.open("rb") as raw:
        for line_no, line in enumerate(raw, 1):
            if not line.strip():
                continue
            try:
                text = line.decode("utf-8")
            except UnicodeDecodeError as exc:
                shown = line.decode("utf-8", "backslashreplace")[:200]
                yield Record(line_no, {"raw": shown}, error=f"invalid UTF-8 ({exc.reason})")
                continue
            try:
                data = json.loads(text)
            except json.JSONDecodeError as exc:
                yield Record(line_no, {"raw": text[:200]}, error=f"invalid JSON: {exc.msg}")
                continue
            if not isinstance(data, dict):
                yield Record(line_no, {"raw": text[:200]}, error="not a JSON object")
                continue
            yield Record(line_no, data)


def read_parquet(path: Path, batch_size: int = 5000) -> Iterator[Record]:
    import pyarrow.parquet as pq

    row_no = 0
    for batch in pq.ParquetFile(path).iter_batches(batch_size=batch_size):
        for data in batch.to_pylist():
            row_no += 1
            bad = []
            for key, value in data.items():
                if isinstance(value, bytes):
                    try:
                        data[key] = value.decode("utf-8")
                    except UnicodeDecodeError:
                        data[key] = value.decode("utf-8", "backslashreplace")
                        bad.append(key)
            yield Record(row_no, data, error=f"invalid UTF-8 in {', '.join(bad)}" if bad else None)


def read_records(path: Path, fmt: str) -> Iterator[Record]:
    if fmt == "csv":
        return read_csv(path)
    if fmt == "tsv":
        return read_csv(path, delimiter="\t")
    if fmt == "jsonl":
        return read_jsonl(path)
    return read_parquet(path)
