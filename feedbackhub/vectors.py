"""pgvector's text form of a vector, for the plain-SQL paths that bypass the ORM's vector field (searches, bulk
inserts, COPY rows)."""

from __future__ import annotations

from typing import Any


def vector_literal(vector: Any) -> str:
    """``[v1,v2,...]`` with each value's shortest exact form, from a numpy array or a sequence of numbers."""
    values = vector.tolist() if hasattr(vector, "tolist") else [float(v) for v in vector]
    return "[" + ",".join(map(repr, values)) + "]"
