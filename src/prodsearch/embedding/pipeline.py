"""The embed stage of a sync: tokenise (thread) → encode (the caller's thread; inference
releases the GIL) → write (thread, its own connection), joined by bounded queues.

Each chunk of unique texts is written as one committed upsert (binary COPY into a temp
table, one ``INSERT … ON CONFLICT DO UPDATE``), so a killed run loses at most the chunks
in flight. A lost database connection is retried for a bounded time (``retry_s``); any
other failure in any stage stops all three and is raised to the caller.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from prodsearch.catalog.source import Source
from prodsearch.config import EncoderMode
from prodsearch.db import connect
from prodsearch.db.retry import retry_db
from prodsearch.embedding import store
from prodsearch.embedding.encoder import Encoder
from prodsearch.embedding.plan import Work, flatten

log = logging.getLogger("prodsearch.sync")

Stage = Literal["tokenize", "encode", "write"]
ProgressEvent = Literal["plan", "embed", "index"]
Progress = Callable[[ProgressEvent, int, int], None]  # (event, done, total)
_DONE = None  # end-of-stream marker on a queue
_POLL_S = 0.2  # how often a blocked stage checks whether another one failed


class ChunkWriter:
    """Writes chunks of unique texts as their products' rows, one committed upsert per
    chunk, on a connection of its own — reopened when a database restart killed it. A lost
    connection is retried for ``retry_s`` seconds (the same chunk again: it is one
    transaction). Used by the local pipeline's writer thread and by each Ray actor."""

    def __init__(
        self, url: str, dim: int, source: Source, model: str, mode: EncoderMode, retry_s: float
    ) -> None:
        self.url, self.dim, self.source = url, dim, source
        self.model, self.mode, self.retry_s = model, mode, retry_s
        self._writer: store.Writer | None = None

    def write(self, chunk: list[Work], vectors: np.ndarray) -> int:
        """Upsert the chunk's rows (each text's vector for every product carrying it)."""
        ids, rows, chashes, shashes = flatten(chunk, vectors)

        def once() -> int:
            writer = self._open()
            with writer.conn.transaction():  # one chunk, one transaction
                return writer.write(ids, rows, chashes, shashes, self.model, self.mode)

        return retry_db(once, self.retry_s, "writing embeddings")

    def _open(self) -> store.Writer:
        writer = self._writer
        if writer is None or writer.conn.closed or writer.conn.broken:
            if writer is not None:
                writer.conn.close()
            conn = connect(self.url)
            with conn.transaction():
                writer = self._writer = store.Writer(conn, self.dim, self.source)
        return writer

    def close(self) -> None:
        if self._writer is not None:
            self._writer.conn.close()


@dataclass
class PipelineCounts:
    """What the pipeline has committed so far (also after a failure)."""

    embedded: int = 0  # unique texts encoded and written
    written: int = 0  # rows upserted
    chunks: int = 0
    busy_s: dict[Stage, float] = field(
        default_factory=lambda: {"tokenize": 0.0, "encode": 0.0, "write": 0.0}
    )
    wall_s: float = 0.0
    batch_sizes: set[int] = field(default_factory=set)  # encoder batch sizes that ran


class Pipeline:
    """Run once: ``Pipeline(...).run()``; ``counts`` holds the committed totals."""

    def __init__(
        self,
        work: list[Work],
        encoder: Encoder,
        url: str,
        source: Source,
        chunk_size: int,
        run_id: int | None = None,
        progress: Progress | None = None,
        retry_s: float = 0.0,
    ) -> None:
        self.retry_s = retry_s
        self.chunks = [work[i : i + chunk_size] for i in range(0, len(work), chunk_size)]
        self.rows = sum(len(w.ids) for w in work)
        self.encoder = encoder
        self.url = url
        self.source = source
        self.run_id = run_id
        self.progress = progress
        self.counts = PipelineCounts()
        self._to_encode: queue.Queue[Any] = queue.Queue(maxsize=2)
        self._to_write: queue.Queue[Any] = queue.Queue(maxsize=2)
        self._stop = threading.Event()
        self._failures: list[BaseException] = []
        self._started = 0.0

    def run(self) -> PipelineCounts:
        self._started = time.perf_counter()
        self.counts.batch_sizes.add(self.encoder.max_batch)
        threads = [
            threading.Thread(target=self._guard, args=(self._tokenize,), name="tokenize"),
            threading.Thread(target=self._guard, args=(self._write,), name="write"),
        ]
        for t in threads:
            t.daemon = True
            t.start()
        try:
            self._encode()
            threads[1].join()
        finally:
            self._stop.set()
            for t in threads:
                t.join(timeout=30)
            self.counts.wall_s = time.perf_counter() - self._started
        if self._failures:
            raise self._failures[0]
        return self.counts

    def _guard(self, stage: Callable[[], None]) -> None:
        """A stage's thread: its failure is kept for the caller and stops the others."""
        try:
            stage()
        except BaseException as exc:
            self._failures.append(exc)
            self._stop.set()

    def _put(self, q: queue.Queue[Any], item: Any) -> bool:
        """Put unless the pipeline stops meanwhile (then ``False``)."""
        while not self._stop.is_set():
            try:
                q.put(item, timeout=_POLL_S)
                return True
            except queue.Full:
                continue
        return False

    def _get(self, q: queue.Queue[Any]) -> tuple[bool, Any]:
        """(True, item) — or (False, None) once the pipeline stops."""
        while not self._stop.is_set():
            try:
                return True, q.get(timeout=_POLL_S)
            except queue.Empty:
                continue
        return False, None

    def _tokenize(self) -> None:
        for chunk in self.chunks:
            t0 = time.perf_counter()
            ids = self.encoder.tokenize([w.text for w in chunk])
            self.counts.busy_s["tokenize"] += time.perf_counter() - t0
            if not self._put(self._to_encode, (chunk, ids)):
                return
        self._put(self._to_encode, _DONE)

    def _encode(self) -> None:
        """The caller's thread; on failure ``run`` stops the other stages."""
        while True:
            ok, item = self._get(self._to_encode)
            if not ok:
                return
            if item is _DONE:
                self._put(self._to_write, _DONE)
                return
            chunk, ids = item
            t0 = time.perf_counter()
            vectors = self.encoder.encode_ids(ids)
            self.counts.busy_s["encode"] += time.perf_counter() - t0
            if not self._put(self._to_write, (chunk, vectors)):
                return

    def _write(self) -> None:
        enc = self.encoder
        writer = ChunkWriter(self.url, enc.dim, self.source, enc.model_name, enc.mode, self.retry_s)
        try:
            while True:
                ok, item = self._get(self._to_write)
                if not ok or item is _DONE:
                    return
                self._write_chunk(writer, *item)
        finally:
            writer.close()

    def _write_chunk(self, writer: ChunkWriter, chunk: list[Work], vectors: np.ndarray) -> None:
        t0 = time.perf_counter()
        written = writer.write(chunk, vectors)
        counts = self.counts
        counts.busy_s["write"] += time.perf_counter() - t0
        counts.chunks += 1
        counts.written += written
        counts.embedded += len(chunk)
        elapsed = time.perf_counter() - self._started
        log.info(
            "run %s batch %d: product ids %d..%d, %d rows upserted (%d texts), "
            "%d/%d rows, elapsed %.1f s, %.1f rows/s",
            self.run_id,
            counts.chunks,
            min(min(w.ids) for w in chunk),
            max(max(w.ids) for w in chunk),
            written,
            len(chunk),
            counts.written,
            self.rows,
            elapsed,
            counts.written / elapsed,
        )
        if self.progress is not None:
            self.progress("embed", counts.written, self.rows)
