"""Which encoder mode a catalog's vectors are embedded in: one catalog, one mode.

The fastest faithful mode depends on the CPU (docs/BENCHMARKS.md, "Encoders without
AMX"): OpenVINO bf16 where the CPU has AMX matrix units, NNCF int8 (``int8-static``)
elsewhere. So ``PRODSEARCH_MODE=auto`` (the default) lets the first embed (or worker)
choose for its CPU and records the choice in ``analytics_features.encoder_mode``; every
later process, on whatever CPU, uses the recorded mode. A mode set explicitly
(``PRODSEARCH_MODE``, ``embed --mode``) that differs from the recorded one:

* ``embed`` switches the catalog: it records the new mode and re-embeds every row (the
  content hash carries the mode, so each stored row is stale);
* a worker refuses to start (:class:`ModeMismatch`, one line): it would write vectors of
  another mode beside the catalog's.

Functions here never commit: the caller owns the transaction. The record's SQL:
:mod:`prodsearch.db.encoder_mode`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC
from typing import TYPE_CHECKING, Any, Literal, cast

import psycopg

from prodsearch.config import EncoderMode, Settings
from prodsearch.db.encoder_mode import RecordedMode, record, recorded
from prodsearch.embedding.cpu import cpu_flags, cpu_name
from prodsearch.errors import ConfigError

if TYPE_CHECKING:
    from prodsearch.embedding.encoder import Encoder

__all__ = ["ModeInForce", "ModeMismatch", "RecordedMode", "in_force", "recorded", "settle"]

Origin = Literal["recorded", "configured", "cpu"]


class ModeMismatch(ConfigError):
    """A process was told to write vectors in another mode than the catalog's."""


@dataclass(frozen=True)
class ModeInForce:
    """The documents' encoder mode a process uses, and why (for status and /health)."""

    mode: EncoderMode
    origin: Origin
    reason: str


def choice_for(flags: frozenset[str], name: str) -> ModeInForce:
    """The mode for a CPU with these feature flags: bf16 with AMX (its bf16 matrix units
    make OpenVINO bf16 the fastest there, at near-exact fidelity), int8-static without
    (VNNI or AVX2 int8 kernels beat bf16, which runs on vector units or falls back to
    f32)."""
    if "amx_bf16" in flags:
        return ModeInForce("bf16", "cpu", f"chosen for this CPU ({name}): it has AMX")
    return ModeInForce("int8-static", "cpu", f"chosen for this CPU ({name}): it has no AMX")


def cpu_choice() -> ModeInForce:
    """:func:`choice_for` this machine's CPU."""
    return choice_for(cpu_flags(), cpu_name())


def _from_record(row: RecordedMode) -> ModeInForce:
    when = row.recorded_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
    reason = f"recorded for this catalog on {when} ({row.reason})"
    return ModeInForce(cast(EncoderMode, row.mode), "recorded", reason)


def without_record(settings: Settings) -> ModeInForce:
    """The mode before any is recorded: the configured one, or the CPU's choice (auto)."""
    if settings.mode != "auto":
        return ModeInForce(settings.mode, "configured", "set by PRODSEARCH_MODE")
    return cpu_choice()


def in_force(conn: psycopg.Connection[Any], settings: Settings) -> ModeInForce:
    """The catalog's mode, read only: the recorded one, else :func:`without_record`."""
    row = recorded(conn)
    return _from_record(row) if row is not None else without_record(settings)


def request_of(settings: Settings, encoder: Encoder | None) -> tuple[str, str]:
    """(the mode asked for, the model) of a writing process: a given encoder's own, else
    the settings' (``auto``: whatever the catalog records)."""
    if encoder is not None:
        return encoder.mode, encoder.model_name
    from prodsearch.embedding.model import resolve_model

    return settings.mode, resolve_model(settings.model, settings.models_dir).name


def settle(
    conn: psycopg.Connection[Any],
    requested: str | None,
    model_name: str,
    *,
    switch: bool,
    write: bool = True,
) -> ModeInForce:
    """The mode a writing process (``embed``, a worker) uses, recorded when none was.
    ``requested``: a mode set explicitly (``None`` or ``auto``: the recorded one). A
    request that differs from the recorded mode switches the catalog when ``switch``
    (``embed``) and raises :class:`ModeMismatch` otherwise (a worker). ``write`` False
    (a dry run): the mode that would be used, nothing recorded."""
    explicit = requested if requested not in (None, "auto") else None
    row = recorded(conn)
    if row is not None and (explicit is None or explicit == row.mode):
        return _from_record(row)
    if row is not None and not switch:
        raise ModeMismatch(
            f"this catalog is embedded in mode {row.mode} ({_from_record(row).reason}), but "
            f"this process is set to {explicit}: unset PRODSEARCH_MODE (or set it to auto or "
            f"{row.mode}) to use the catalog's mode, or run `prodsearch embed --mode "
            f"{explicit}` to re-embed the catalog in {explicit}"
        )
    if explicit is not None:
        choice = ModeInForce(cast(EncoderMode, explicit), "configured", "set explicitly")
    else:
        choice = cpu_choice()
    if write:
        record(conn, choice.mode, model_name, choice.reason)
    return choice
