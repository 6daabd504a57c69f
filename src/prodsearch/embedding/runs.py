"""What a sync run takes and gives back: its options and its result."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

RunStatus = Literal["running", "succeeded", "failed", "interrupted", "dry-run"]
IndexAction = Literal["kept", "built", "rebuilt"]
Engine = Literal["local", "ray"]


@dataclass
class SyncOptions:
    mode: str = "exact"
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
class SyncResult:
    run_id: int | None = None
    status: RunStatus = "running"
    mode: str = ""
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
    timings: dict[str, float] = field(default_factory=dict)
    embeddings_after: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)
