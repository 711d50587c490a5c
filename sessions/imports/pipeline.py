"""The import pipeline shared by every format: read chunks in one thread, merge them in the caller's.

How one file goes in:

1. A :class:`~sessions.imports.chunking.ChunkReader` thread streams the file through its format module, which
   yields validated :class:`~sessions.imports.normalise.Conversation` rows (plain tuples) or
   :class:`~sessions.imports.base.Rejected` records, and hands them over in bounded chunks.
2. The caller's thread (which owns the Django database connection) merges each chunk in one transaction with a
   :class:`~sessions.imports.loading.Loader`: COPY into staging, then set-based upserts
   (:mod:`sessions.imports.merge_sql`), then the batch's counters.
3. About every ``PROGRESS_SECONDS`` the caller's ``progress(batch)`` is called.
4. Each chunk's commit bumps the batch's heartbeat, and so does a wait of ``runs.HEARTBEAT_SECONDS`` for the next
   chunk (a resumed run reading past what was imported before): a run is stale only when its process stopped.

``skip`` records (those an earlier, interrupted run committed, :mod:`sessions.imports.runs`) are read past.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from types import ModuleType

from sessions.imports import runs
from sessions.imports.chunking import ChunkReader, EndOfFile
from sessions.imports.loading import Loader
from sessions.imports.reader import ImportFile
from sessions.models import ImportBatch

PROGRESS_SECONDS = 0.5


def run(
    batch: ImportBatch,
    f: ImportFile,
    module: ModuleType,
    progress: Callable[[ImportBatch], None] | None,
    *,
    skip: int = 0,
) -> str:
    """Import ``f`` into ``batch`` (already RUNNING), past its first ``skip`` records. Returns the file's sha256.
    Raises FileError for a file-level problem (what was merged before it stays), runs.Superseded when another run
    took the batch over."""
    reader = ChunkReader(f, module, batch.source, skip=skip)
    loader = Loader(batch)
    reader.start()
    last_progress = 0.0
    try:
        while True:
            item = reader.next_item(timeout=runs.HEARTBEAT_SECONDS)
            if item is None:
                runs.import_batch_heartbeat(batch=batch)
                continue
            if isinstance(item, BaseException):
                raise item
            if isinstance(item, EndOfFile):
                return item.sha256
            loader.merge_chunk(item)
            now = time.monotonic()
            if progress is not None and now - last_progress >= PROGRESS_SECONDS:
                last_progress = now
                progress(batch)
    finally:
        reader.stop.set()
        reader.join(timeout=10)
