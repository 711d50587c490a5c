"""Running sentence embeddings from an ONNX export with onnxruntime, without torch (``OnnxEncoder``), and finding or
making the export of a model's weights (``export_onnx``) in ``EMBEDDING_CACHE_DIR``."""

from __future__ import annotations

import fcntl
import hashlib
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnxruntime as ort
from django.conf import settings
from tokenizers import Tokenizer

from feedbackhub import embeddings


def cache_dir() -> Path:
    return Path(getattr(settings, "EMBEDDING_CACHE_DIR", None) or Path(settings.BASE_DIR) / ".data" / "models")


def _export_dir(base: str) -> Path:
    """A folder per model weights (path, size and mtime of the weights file) and export recipe."""
    path = Path(embeddings.model_path(base)).resolve()
    weights = [p for p in (path / "model.safetensors", path / "pytorch_model.bin") if p.is_file()]
    files = [(p.name, p.stat().st_size, int(p.stat().st_mtime)) for p in weights]
    stamp = [str(path), embeddings.EXPORT_VERSION, *files]
    digest = hashlib.sha256(json.dumps(stamp).encode()).hexdigest()[:16]
    slug = "".join(c if c.isalnum() or c in "-_." else "_" for c in path.name)[:60]
    return cache_dir() / f"{slug}-{digest}"


def export_onnx(base: str, *, quantized: bool) -> Path:
    """The folder holding the ONNX export of model ``base`` (``model.onnx``, ``model_int8.onnx``, the tokenizer and
    the pooling settings), exporting it from the local weights when it is not there yet. Processes that race wait on
    a file lock; the export is written to a temporary folder and renamed into place, so a half-written export is never
    loaded. Imports torch only when it exports."""
    target = _export_dir(base)
    wanted = target / ("model_int8.onnx" if quantized else "model.onnx")
    if wanted.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.parent / f"{target.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if not (target / "model.onnx").is_file() or not (target / "model_int8.onnx").is_file():
                # Exporting needs torch, which a process that only runs exports never loads.
                from feedbackhub import embedding_export  # noqa: PLC0415

                embedding_export.export(base, target)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    return target


class OnnxEncoder:
    """An ONNX export run by onnxruntime: tokenise (the model's own tokenizer.json, truncated to its max sequence
    length), run the transformer, mean-pool over the attention mask, L2-normalise; what sentence-transformers does,
    without torch. Texts are sorted by length so each batch pads little. Thread-safe (the tokenizer is configured
    once, onnxruntime sessions run concurrently)."""

    def __init__(self, folder: Path, *, quantized: bool, threads: int = 0) -> None:
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

    def encode(self, texts: Sequence[str], *, batch_size: int = embeddings.ENCODE_BATCH_SIZE,
               normalize_embeddings: bool = True, convert_to_numpy: bool = True,
               show_progress_bar: bool = False) -> np.ndarray:
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
