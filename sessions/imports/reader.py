"""Streaming access to an import file: plain or gzip-compressed, size-limited, read line by line or record by record.

Nothing here holds more than one line (or one JSON array element) plus a read buffer in memory, whatever the file
size. Limits come from settings: ``IMPORT_MAX_FILE_BYTES`` (on disk, and again for the decompressed content of a
``.gz``) and ``IMPORT_MAX_LINE_BYTES`` (one line, or one element of a JSON array).

Encoding: UTF-8 only. A UTF-8 byte-order mark at the very start of the file is accepted and skipped (spreadsheet
programs write one); a UTF-16/UTF-32 byte-order mark stops the file with an error that says how to convert it.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import re
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from sessions.imports.errors import FileError

UTF8_BOM = b"\xef\xbb\xbf"
_FOREIGN_BOMS = (
    (b"\x00\x00\xfe\xff", "UTF-32 (big-endian)"),
    (b"\xff\xfe\x00\x00", "UTF-32 (little-endian)"),
    (b"\xfe\xff", "UTF-16 (big-endian)"),
    (b"\xff\xfe", "UTF-16 (little-endian)"),
)
GZIP_MAGIC = b"\x1f\x8b"
READ_CHUNK = 1 << 20


def human_bytes(n: int) -> str:
    value = float(n)
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{int(value)} bytes" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} bytes"  # pragma: no cover


def check_bom(head: bytes, file_name: str) -> None:
    """Raise a clear error when the file starts with a byte-order mark of an encoding other than UTF-8."""
    for bom, name in _FOREIGN_BOMS:
        if head.startswith(bom):
            raise FileError(
                f"{file_name}: line 1: the file is encoded as {name} (it starts with that byte-order mark); "
                "FeedbackHub reads UTF-8 only. Convert it first, e.g. `iconv -f UTF-16 -t UTF-8`."
            )


def utf8_error(data: bytes) -> str | None:
    """Where ``data`` stops being valid UTF-8, as a sentence; None when it is valid."""
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        bad = data[exc.start : exc.end].hex(" ")
        return f"invalid UTF-8 at byte {exc.start + 1} of the line (bytes {bad}); the file must be UTF-8"
    return None


class _HashingRaw(io.RawIOBase):
    """The file on disk, hashed (sha256) and counted as it is read, so neither needs a second pass."""

    def __init__(self, path: Path) -> None:
        self._f = open(path, "rb", buffering=0)  # noqa: SIM115 (closed by close())
        self.digest = hashlib.sha256()
        self.read_bytes = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # type: ignore[no-untyped-def,override]
        n = self._f.readinto(buffer)
        if n:
            self.digest.update(memoryview(buffer)[:n])
            self.read_bytes += n
        return n or 0

    def close(self) -> None:
        self._f.close()
        super().close()


class ImportFile:
    """One opened import file. Use as a context manager; iterate with :meth:`lines` or :meth:`json_array`."""

    def __init__(self, path: Path, *, max_file_bytes: int, max_line_bytes: int) -> None:
        self.path = Path(path)
        self.name = self.path.name
        self.max_file_bytes = max_file_bytes
        self.max_line_bytes = max_line_bytes
        try:
            self.size = self.path.stat().st_size
        except OSError as exc:
            raise FileError(f"{self.name}: cannot be read: {exc.strerror or exc}") from exc
        if self.size > max_file_bytes:
            raise FileError(
                f"{self.name}: the file is {human_bytes(self.size)}, larger than the import limit of "
                f"{human_bytes(max_file_bytes)} (IMPORT_MAX_FILE_BYTES); split it into smaller files"
            )
        self._hashing = _HashingRaw(self.path)
        self._raw: BinaryIO = io.BufferedReader(self._hashing, READ_CHUNK)
        self.compressed = self._raw.peek(2)[:2] == GZIP_MAGIC
        self._stream: BinaryIO = (
            gzip.GzipFile(fileobj=self._raw, mode="rb") if self.compressed else self._raw  # type: ignore[assignment]
        )
        #: Decompressed bytes handed out so far (checked against the file limit: a small .gz can expand hugely).
        self.content_bytes = 0

    def __enter__(self) -> ImportFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._stream is not self._raw:
            self._stream.close()
        self._raw.close()

    def position(self) -> int:
        """Bytes of the file on disk read so far (for progress against ``size``)."""
        return min(self._hashing.read_bytes, self.size)

    def sha256(self) -> str:
        """sha256 of the bytes on disk; complete once the whole file has been read."""
        return self._hashing.digest.hexdigest()

    def _count(self, n: int, where: str) -> None:
        self.content_bytes += n
        if self.content_bytes > self.max_file_bytes:
            raise FileError(
                f"{self.name}: {where}: the decompressed content is larger than the import limit of "
                f"{human_bytes(self.max_file_bytes)} (IMPORT_MAX_FILE_BYTES); split it into smaller files"
            )

    def _read(self, size: int, where: str) -> bytes:
        try:
            return self._stream.read(size)
        except (OSError, EOFError, zlib.error) as exc:
            raise FileError(f"{self.name}: {where}: the compressed data is damaged or truncated ({exc})") from exc

    def head(self, size: int = 4096) -> bytes:
        """Up to ``size`` bytes from the start of the content, without consuming them (BOM and whitespace kept)."""
        try:
            return self._stream.peek(size)[:size]  # type: ignore[attr-defined]
        except (OSError, EOFError, zlib.error) as exc:
            raise FileError(f"{self.name}: line 1: the compressed data is damaged or truncated ({exc})") from exc

    def is_json_array(self) -> bool:
        """Whether the content (after a UTF-8 BOM and whitespace) starts with ``[``."""
        head = self.head()
        if head.startswith(UTF8_BOM):
            head = head[3:]
        return head.lstrip(_SPACE)[:1] == b"["

    def lines(self, *, keep_ends: bool = False) -> Iterator[tuple[int, bytes | None]]:
        """Yield ``(line_number, line)`` for each line, without its line ending; blank lines are skipped.

        With ``keep_ends`` every line comes as read, line ending and blank lines included (for CSV, whose quoted
        fields may span lines). An over-long line yields ``(line_number, None)`` and is skipped without being
        held in memory.
        """
        readline = self._stream.readline
        limit = self.max_line_bytes
        lineno = 0
        first = True
        while True:
            try:
                line = readline(limit + 1)
            except (OSError, EOFError, zlib.error) as exc:
                raise FileError(
                    f"{self.name}: line {lineno + 1}: the compressed data is damaged or truncated ({exc})"
                ) from exc
            if not line:
                return
            lineno += 1
            self._count(len(line), f"line {lineno}")
            if first:
                first = False
                check_bom(line, self.name)
                if line.startswith(UTF8_BOM):
                    line = line[3:]
            if len(line) > limit and not (len(line) == limit + 1 and line[-1] == 10):
                while line and line[-1] != 10:
                    line = readline(READ_CHUNK)
                    self._count(len(line), f"line {lineno}")
                yield lineno, None
                continue
            if keep_ends:
                yield lineno, line
                continue
            line = line.rstrip(b"\r\n")
            if line.strip():
                yield lineno, line
            else:
                lineno = self._skip_blank_lines(lineno)

    def _skip_blank_lines(self, lineno: int) -> int:
        """After a blank line: read past the blank lines that follow a whole buffer at a time, counting them, and
        return the last line number skipped. A file of millions of blank lines costs a few calls per megabyte, not
        a ``readline`` each. The whitespace that starts the next non-blank line is left to it."""
        peek = getattr(self._stream, "peek", None)
        if peek is None:
            return lineno
        while True:
            try:
                buf = peek(READ_CHUNK)
            except (OSError, EOFError, zlib.error) as exc:
                raise FileError(
                    f"{self.name}: line {lineno + 1}: the compressed data is damaged or truncated ({exc})"
                ) from exc
            rest = buf.lstrip(_SPACE)
            end = buf.rfind(NL, 0, len(buf) - len(rest)) + 1  # through the last line ending of the blank run
            if end == 0:
                return lineno
            lineno += buf.count(NL, 0, end)
            self._count(end, f"line {lineno}")
            self._read(end, f"line {lineno}")
            if rest:
                return lineno

    def json_array(self) -> Iterator[tuple[int, int, bytes]]:
        """Yield ``(record_number, line_number, element_bytes)`` for each element of a top-level JSON array.

        Elements are split with a small scanner that only tracks strings and brackets; each element is then parsed
        on its own, so a malformed element is rejected alone. A broken structure (unbalanced brackets, text after
        the array) stops the file, since nothing after it can be located reliably.
        """
        splitter = _ArraySplitter(self)
        yield from splitter.run()


# A complete JSON string, or a lone quote (a string not finished in the buffer), or a structural character.
_TOKEN = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"|"|[\[\]{},]', re.DOTALL)
_SPACE = b" \t\r\n"
NL = b"\n"


class _ArraySplitter:
    def __init__(self, f: ImportFile) -> None:
        self.f = f

    def _more(self, buf: bytes, where: str) -> tuple[bytes, bool]:
        data = self.f._read(READ_CHUNK, where)
        if not data:
            return buf, False
        self.f._count(len(data), where)
        return buf + data, True

    def run(self) -> Iterator[tuple[int, int, bytes]]:  # noqa: C901 (one small state machine)
        f = self.f
        buf, more = self._more(b"", "line 1")
        while more and len(buf) < 4:
            buf, more = self._more(buf, "line 1")
        check_bom(buf, f.name)
        if buf.startswith(UTF8_BOM):
            buf = buf[3:]
        while more and not buf.strip(_SPACE):
            buf, more = self._more(buf, "line 1")
        pos = len(buf) - len(buf.lstrip(_SPACE))
        if pos >= len(buf) or buf[pos] != 0x5B:
            raise FileError(f"{f.name}: line {1 + buf.count(NL, 0, pos)}: expected a JSON array (`[`)")
        line_base, base = 1, 0  # buf[base] is on line `line_base`
        depth = 1
        seg = scan = pos + 1  # seg: start of the current element's segment (after `[` or a top-level `,`)
        record = 0
        search = _TOKEN.search
        while True:
            m = search(buf, scan)
            if m is None or m.end() - m.start() == 1 and buf[m.start()] == 0x22:
                # Nothing more complete in the buffer: keep the current segment only, then read on.
                if len(buf) - seg > f.max_line_bytes:
                    line = line_base + buf.count(NL, base, seg)
                    raise FileError(
                        f"{f.name}: record {record + 1} (line {line}): the element is larger than "
                        f"{human_bytes(f.max_line_bytes)} (IMPORT_MAX_LINE_BYTES)"
                    )
                line_base += buf.count(NL, base, seg)
                scan = (m.start() if m is not None else len(buf)) - seg
                buf, base, seg = buf[seg:], 0, 0
                buf, more = self._more(buf, f"record {record + 1}")
                if not more:
                    line = line_base + buf.count(NL)
                    raise FileError(f"{f.name}: line {line}: the JSON array is not closed (the file ends inside it)")
                continue
            at, scan = m.start(), m.end()
            c = buf[at]
            if c == 0x22:  # a whole string: nothing inside it counts
                continue
            if c in (0x7B, 0x5B):  # { [
                depth += 1
                continue
            if c in (0x7D, 0x5D):  # } ]
                depth -= 1
                if depth > 0:
                    continue
                if c != 0x5D:
                    raise FileError(f"{f.name}: line {line_base + buf.count(NL, base, at)}: unbalanced `}}`")
            elif depth > 1:  # a comma inside an element
                continue
            # A top-level comma or the closing bracket: buf[seg:at] is one element.
            segment = buf[seg:at]
            element = segment.strip(_SPACE)
            if element:
                record += 1
                start = seg + len(segment) - len(segment.lstrip(_SPACE))
                line_base += buf.count(NL, base, start)
                base = start
                yield record, line_base, element
            elif c == 0x2C or record:
                line = line_base + buf.count(NL, base, at)
                raise FileError(f"{f.name}: line {line}: empty element in the JSON array (a stray comma)")
            seg = at + 1
            if depth == 0:
                rest = buf[scan:]
                while True:
                    if rest.strip(_SPACE):
                        line = line_base + buf.count(NL, base, scan)
                        raise FileError(f"{f.name}: line {line}: unexpected text after the end of the JSON array")
                    rest, more = self._more(b"", "end of file")
                    if not more:
                        return
