"""Errors raised while reading an import file.

A :class:`FileError` stops the whole file (it cannot be read on); a :class:`RecordError` rejects one record and the
import goes on with the next.
"""

from __future__ import annotations


class FileError(Exception):
    """The file as a whole cannot be imported (or read any further). The message names the problem and where."""


class RecordError(Exception):
    """One record is malformed. ``field`` is a path into the record such as ``turns[2].feedback[0].rating``."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}" if field else reason)
        self.field = field
        self.reason = reason

    def within(self, prefix: str) -> RecordError:
        """The same error with ``prefix`` put in front of its field path."""
        if not self.field or self.field.startswith("["):
            field = prefix + self.field
        else:
            field = f"{prefix}.{self.field}"
        return RecordError(field, self.reason)
