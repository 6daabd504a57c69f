"""What a sync run takes and gives back: its options and its result."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Literal

from prodsearch.config import EncoderMode, Engine, ModeSetting
from prodsearch.jsonvalue import JsonObject

RunStage = Literal["plan", "delete", "embed", "index", "search support", "done"]
RunStatus = Literal["running", "succeeded", "failed", "interrupted", "dry-run"]
IndexAction = Literal["kept", "built", "rebuilt"]


@dataclass
class SyncOptions:
    mode: ModeSetting = "auto"  # auto: the catalog's recorded mode (embedding/modes.py)
    batch_size: int | None = None
    limit: int | None = None
    full_refresh: bool = False
    dry_run: bool = False
    chunk_size: int = 1024  # unique texts per committed chunk
    refit_map: bool = False  # refit the Polish→English query map even if one exists
    engine: Engine = "local"  # where the encode step runs (ray: embedding/ray_engine.py)
    workers: int | None = None  # ray: actors (default: the cluster's CPUs, here 2)
    ray_address: str | None = None  # ray: an existing cluster (default: a local one)


@dataclass
class RunTimings:
    """Seconds per step of a run (None: the step did not run). ``tokenize_s``, ``encode_s``
    and ``write_s`` are busy seconds of those stages, measured apart under both engines
    (local threads or Ray actors); ``pipeline_s`` is the embed stage's wall time."""

    model_load_s: float | None = None
    plan_s: float | None = None
    delete_s: float | None = None
    tokenize_s: float | None = None
    encode_s: float | None = None
    write_s: float | None = None
    pipeline_s: float | None = None
    index_s: float | None = None
    text_index_s: float | None = None  # the GIN indexes, when a bulk load dropped them
    terms_s: float | None = None
    query_map_s: float | None = None
    total_s: float | None = None

    def as_dict(self) -> dict[str, float]:
        """The steps that ran, ``{"plan_s": 1.2, …}`` (the runs table's ``timings``)."""
        return {k: v for k, v in asdict(self).items() if v is not None}


@dataclass
class SyncResult:
    run_id: int | None = None
    status: RunStatus = "running"
    mode: EncoderMode | None = None  # set once the run has settled its mode
    mode_reason: str = ""  # why this mode (embedding/modes.py)
    model: str = ""
    eligible: int = 0
    scanned: int = 0  # rows examined in Python (raw text, model or mode changed)
    to_embed: int = 0  # rows to write this run
    embedded: int = 0  # unique texts encoded
    written: int = 0  # rows upserted
    skipped_unchanged: int = 0
    deduplicated: int = 0
    deleted: int = 0
    failed: int = 0
    dry_run: bool = False
    index: IndexAction = "kept"
    timings: RunTimings = field(default_factory=RunTimings)
    embeddings_after: int | None = None
    batch_sizes: list[int] = field(default_factory=list)  # encoder batch sizes that ran

    def as_dict(self) -> JsonObject:
        out: JsonObject = asdict(self)
        out["timings"] = self.timings.as_dict()
        return out
