"""Reading a file in chunks: a thread streams the file through its format module and hands chunks to the loader.

A chunk holds up to ``CHUNK_CONVERSATIONS`` validated conversations (or whatever arrived within ``CHUNK_SECONDS``, or
in ``CHUNK_BYTES`` of input) and the chunk's rejected records. At most ``QUEUE_CHUNKS`` wait in the queue, so memory
stays flat for any file size and Python parsing overlaps with PostgreSQL's work on the previous chunk.

For a format that can tell a record's key before validating it (native), the reader looks the keys up on its own
connection and skips validating records stored with the same content hash: a re-import of an unchanged file costs
a parse, a hash and an index probe per record.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import islice
from types import ModuleType

from django.db import DatabaseError, connection

from sessions.imports.base import Item, Parsed, Rejected
from sessions.imports.errors import FileError
from sessions.imports.merge_sql import EXISTING
from sessions.imports.normalise import Conversation
from sessions.imports.reader import ImportFile

logger = logging.getLogger(__name__)

CHUNK_CONVERSATIONS = 2000
#: A chunk also ends after this many bytes of input, so a file of huge records still holds a bounded amount.
CHUNK_BYTES = 24 * 1024 * 1024
CHUNK_SECONDS = 0.4
QUEUE_CHUNKS = 2


@dataclass
class Chunk:
    records: int = 0
    conversations: list[Conversation] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)
    #: Records the reader found stored with the same content hash (not validated, not sent).
    unchanged: int = 0
    #: Whether the reader looked the chunk's conversations up already (then the loader need not).
    prechecked: bool = False
    position: int = 0


UNCHANGED = object()


@dataclass
class EndOfFile:
    """The reader read the whole file; ``sha256`` is the file's."""

    sha256: str


class ChunkReader(threading.Thread):
    """Reads and normalises the file in chunks; hands over Chunk, then EndOfFile (or the exception that stopped it)."""

    def __init__(self, f: ImportFile, module: ModuleType, default_source: str, *, skip: int = 0) -> None:
        super().__init__(name=f"import-reader-{f.name}", daemon=True)
        self.f = f
        #: Records an earlier run of the import committed: read past, never validated, looked up or merged.
        self.skip = skip
        self.module = module
        self.default_source = default_source
        self.out: queue.Queue[Chunk | EndOfFile | BaseException] = queue.Queue(maxsize=QUEUE_CHUNKS)
        self.stop = threading.Event()
        self.prechecked = False
        #: Keys of the conversations in the last chunks handed over (some may not be committed yet).
        self.sent: deque[set[tuple[str, str]]] = deque(maxlen=QUEUE_CHUNKS + 2)
        self.current_keys: set[tuple[str, str]] = set()

    def _put(self, item: Chunk | EndOfFile | BaseException) -> bool:
        while not self.stop.is_set():
            try:
                self.out.put(item, timeout=0.2)
                return True
            except queue.Full:
                continue
        return False

    def run(self) -> None:
        try:
            self._run()
        except BaseException as exc:  # handed to the consumer, which records it on the batch
            self._put(exc)
        finally:
            connection.close()  # this thread's own connection, if the pre-check opened one

    def _entries(self) -> Iterator[Item | object]:
        """The format's items; with a format that can tell a record's key before validating it, records stored
        unchanged come out as ``UNCHANGED`` without being validated (a re-import costs a parse and a look-up)."""
        iter_parsed = getattr(self.module, "iter_parsed", None)
        if iter_parsed is None:
            yield from islice(self.module.iter_items(self.f, default_source=self.default_source), self.skip, None)
            return
        self.prechecked = True
        pending: list[Parsed | Rejected] = []
        start = self.f.content_bytes
        # One entry per record in either form, so a resumed run skips exactly the records committed before.
        for entry in islice(iter_parsed(self.f, default_source=self.default_source), self.skip, None):
            pending.append(entry)
            if len(pending) >= CHUNK_CONVERSATIONS or self.f.content_bytes - start > CHUNK_BYTES:
                yield from self._resolve(pending)
                pending, start = [], self.f.content_bytes
        yield from self._resolve(pending)

    def _resolve(self, pending: list[Parsed | Rejected]) -> Iterator[Item | object]:
        keys = [p.key for p in pending if isinstance(p, Parsed) and p.key is not None]
        stored = self._stored_hashes(keys) if keys else {}
        finish = self.module.finish
        changed: set[tuple[str, str]] = set()  # sent in this batch: a later copy must not be skipped
        for p in pending:
            if isinstance(p, Rejected):
                yield p
            elif (
                p.key is not None
                and stored.get(p.key) == p.content_hash
                and p.key not in changed
                and not self._recently_sent(p.key)
            ):
                yield UNCHANGED
            else:
                if p.key is not None:
                    changed.add(p.key)
                yield finish(p, default_source=self.default_source)

    def _stored_hashes(self, keys: list[tuple[str, str]]) -> dict[tuple[str, str], str]:
        """Committed content hashes of ``keys``, read on this thread's own connection (so, outside the caller's
        transaction: rows it has not committed yet are not seen, and those records are simply not skipped)."""
        try:
            with connection.cursor() as cursor, connection.wrap_database_errors:
                cursor.cursor.execute(EXISTING, ([k[0] for k in keys], [k[1] for k in keys]))
                return {(s, e): h for s, e, h in cursor.cursor.fetchall()}
        except DatabaseError:
            logger.warning("import pre-check look-up failed; records are validated and merged as usual", exc_info=True)
            return {}

    def _recently_sent(self, key: tuple[str, str]) -> bool:
        # A conversation in a chunk the loader may not have committed yet: the stored hash may be stale.
        return key in self.current_keys or any(key in sent for sent in self.sent)

    def _run(self) -> None:
        chunk = Chunk()
        started = time.monotonic()
        monotonic = time.monotonic
        entries = self._entries()
        f = self.f
        start_bytes = f.content_bytes

        def put() -> bool:
            nonlocal chunk, started, start_bytes
            chunk.position = f.position()
            chunk.prechecked = self.prechecked
            self.sent.append(self.current_keys)
            ok = self._put(chunk)
            chunk, self.current_keys, started, start_bytes = Chunk(), set(), monotonic(), f.content_bytes
            return ok

        while True:
            try:
                item = next(entries)
            except StopIteration:
                break
            except FileError:
                # Merge what was read before the file broke, then report the break.
                if chunk.records:
                    put()
                raise
            if self.stop.is_set():
                return
            if item is UNCHANGED:
                chunk.unchanged += 1
            elif isinstance(item, Conversation):
                key = (item.source, item.external_id)
                if key in self.current_keys and not put():  # the same one twice: merge the first before the second
                    return
                self.current_keys.add(key)
                chunk.conversations.append(item)
            else:
                chunk.rejected.append(item)  # type: ignore[arg-type]
            chunk.records += 1
            if (
                len(chunk.conversations) >= CHUNK_CONVERSATIONS
                or monotonic() - started > CHUNK_SECONDS
                or f.content_bytes - start_bytes > CHUNK_BYTES
            ) and not put():
                return
        if chunk.records and not put():
            return
        self._put(EndOfFile(self.f.sha256()))

    def next_item(self, timeout: float | None = None) -> Chunk | EndOfFile | BaseException | None:
        """The next chunk, the end of the file, or the exception that stopped the reader (waits for it, or for
        ``timeout`` seconds and then answers None)."""
        try:
            return self.out.get(timeout=timeout)
        except queue.Empty:
            return None
