"""The embed stage on a Ray cluster (``prodsearch embed --engine ray``).

The plan is made once, in PostgreSQL, by the driver (the same ``sync`` as the local
engine: hash skip, dedupe, deletes, the run record). Its unique texts are cut into chunks
of consecutive product ids, and each chunk is one row of a Ray Dataset. ``map_batches``
sends the chunks to a fixed pool of actors (one per worker, one CPU each); every actor
loads the encoder once and keeps one database connection, encodes a chunk, and writes it
back as the local engine does (binary COPY + one upsert + commit, a lost connection
retried). A killed worker or driver therefore loses at most the chunks in flight; a
rerun plans exactly what is missing.

Ray is an optional extra (``pip install 'prodsearch[ray]'``); nothing here is imported
unless the Ray engine is asked for.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Mapping
from typing import Any

import numpy as np

from prodsearch.config import EncoderMode, Settings
from prodsearch.db.retry import one_line
from prodsearch.embedding.pipeline import ChunkWriter, PipelineCounts, Progress
from prodsearch.embedding.plan import Work
from prodsearch.errors import ConfigError

log = logging.getLogger("prodsearch.sync")


def require_ray() -> Any:
    # Ray's own chatter (C++ log lines, data-execution INFO) stays in its session logs
    os.environ.setdefault("RAY_BACKEND_LOG_LEVEL", "fatal")
    try:
        import ray
        import ray.data
    except ImportError:
        raise ConfigError(
            "--engine ray needs Ray: pip install 'prodsearch[ray]' (or pip install "
            "'ray[data]==2.60.0'), then run again"
        ) from None
    for name in ("ray", "ray.data"):  # after the import, which sets them up
        logging.getLogger(name).setLevel(logging.ERROR)
    return ray


def id_range_chunks(work: list[Work], chunk_size: int) -> list[list[Work]]:
    """Unique texts cut into chunks of consecutive product ids (each chunk sorted by
    text length inside, so the encoder's batches pad little)."""
    ordered = sorted(work, key=lambda w: min(w.ids))
    chunks = [ordered[i : i + chunk_size] for i in range(0, len(ordered), chunk_size)]
    return [sorted(chunk, key=lambda w: len(w.text)) for chunk in chunks]


def _encode_chunk(chunk: list[Work]) -> str:
    return json.dumps([[w.text, w.chash, w.ids, w.shashes] for w in chunk])


def _decode_chunk(data: str) -> list[Work]:
    return [Work(text, chash, ids, shashes) for text, chash, ids, shashes in json.loads(data)]


class ChunkEmbedder:
    """A Ray actor: the encoder loaded once, and the local pipeline's ``ChunkWriter``
    (one connection, one committed upsert per chunk, a lost connection retried)."""

    def __init__(self, settings: Settings, url: str, mode: EncoderMode, batch_size: int) -> None:
        from prodsearch.catalog.source import load_source
        from prodsearch.db import connect
        from prodsearch.embedding.encoder import encoder_for

        # the run's batch size (--batch-size), not the settings' default
        self.encoder = encoder_for(settings, mode, max_batch=batch_size, threads=1)
        with connect(url) as conn:
            source = load_source(conn, settings)
        enc = self.encoder
        self.writer = ChunkWriter(
            url, enc.dim, source, enc.model_name, enc.mode, settings.db_retry_s
        )

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Each chunk: tokenise, encode, write — timed apart, as the local pipeline's
        stages are, so ``busy_s`` means the same under both engines."""
        out: dict[str, list[float]] = {
            "written": [],
            "embedded": [],
            "tokenize_s": [],
            "encode_s": [],
            "write_s": [],
            "batch_size": [],
        }
        for data in batch["chunk"]:
            chunk = _decode_chunk(str(data))
            t0 = time.perf_counter()
            ids = self.encoder.tokenize([w.text for w in chunk])
            t1 = time.perf_counter()
            vectors = self.encoder.encode_ids(ids)
            t2 = time.perf_counter()
            out["written"].append(self.writer.write(chunk, vectors))
            out["write_s"].append(time.perf_counter() - t2)
            out["encode_s"].append(t2 - t1)
            out["tokenize_s"].append(t1 - t0)
            out["embedded"].append(len(chunk))
            out["batch_size"].append(self.encoder.max_batch)
        return {key: np.array(values) for key, values in out.items()}


class RayPipeline:
    """The Ray counterpart of ``Pipeline``: ``run()`` returns the committed counts."""

    def __init__(
        self,
        work: list[Work],
        settings: Settings,
        url: str,
        mode: EncoderMode,
        chunk_size: int,
        batch_size: int,
        run_id: int | None,
        progress: Progress | None,
        workers: int,
        address: str | None,
    ) -> None:
        self.chunks = id_range_chunks(work, chunk_size)
        self.rows = sum(len(w.ids) for w in work)
        self.settings, self.url, self.mode = settings, url, mode
        self.batch_size = batch_size
        self.run_id, self.progress = run_id, progress
        self.workers, self.address = workers, address
        self.counts = PipelineCounts()

    def run(self) -> PipelineCounts:
        ray = require_ray()
        started = time.perf_counter()
        if not ray.is_initialized():
            try:
                ray.init(
                    address=self.address,
                    num_cpus=None if self.address else self.workers,
                    include_dashboard=False,
                    log_to_driver=False,
                    logging_level=logging.WARNING,
                    configure_logging=False,
                )
            except Exception as exc:  # unreachable cluster, missing auth token, …
                where = f"the Ray cluster at {self.address}" if self.address else "Ray"
                reason = one_line(exc)[:300]
                raise ConfigError(
                    f"cannot start or reach {where} ({reason}); check --ray-address and, "
                    "for a cluster, its auth token (RAY_AUTH_TOKEN or ~/.ray/auth_token)"
                ) from exc
        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = False
        ctx.execution_options.verbose_progress = False
        ds = ray.data.from_items(
            [{"chunk": _encode_chunk(c)} for c in self.chunks],
            override_num_blocks=max(1, len(self.chunks)),
        )
        out = ds.map_batches(
            ChunkEmbedder,
            fn_constructor_kwargs={
                "settings": self.settings,
                "url": self.url,
                "mode": self.mode,
                "batch_size": self.batch_size,
            },
            batch_size=1,
            batch_format="numpy",
            compute=ray.data.ActorPoolStrategy(size=min(self.workers, len(self.chunks))),
            num_cpus=1,
        )
        try:
            for row in out.iter_rows():
                self._count(row, started)
        finally:
            self.counts.wall_s = time.perf_counter() - started
        return self.counts

    def _count(self, row: Mapping[str, float], started: float) -> None:
        """One chunk's report (a Ray row of its counters, all numbers) added to the run's."""
        counts = self.counts
        counts.chunks += 1
        counts.written += int(row["written"])
        counts.embedded += int(row["embedded"])
        for stage in ("tokenize", "encode", "write"):
            counts.busy_s[stage] += float(row[f"{stage}_s"])
        counts.batch_sizes.add(int(row["batch_size"]))
        elapsed = time.perf_counter() - started
        log.info(
            "run %s chunk %d (ray): %d rows upserted (%d texts), %d/%d rows, elapsed %.1f s",
            self.run_id,
            counts.chunks,
            int(row["written"]),
            int(row["embedded"]),
            counts.written,
            self.rows,
            elapsed,
        )
        if self.progress is not None:
            self.progress("embed", counts.written, self.rows)
