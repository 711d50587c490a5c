"""Running sentence embeddings with sentence-transformers on torch (the ``torch`` backend)."""

from __future__ import annotations

import torch
from sentence_transformers import SentenceTransformer


def load(path: str, *, threads: int) -> SentenceTransformer:
    model = SentenceTransformer(path, device="cpu")
    set_threads(threads)
    return model


def set_threads(threads: int) -> None:
    if threads > 0:
        torch.set_num_threads(threads)
