"""Exporting a sentence-transformers model to ONNX: an fp32 graph (fused by onnxruntime's transformer optimiser when
that gives the same outputs) and an int8 one (weights quantised per channel), with the tokenizer and pooling settings
beside them. Needs torch; only a process that finds no export of the weights it runs imports this module
(``embedding_onnx.export_folder``)."""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import torch
from onnxruntime.quantization import QuantType, quantize_dynamic
from onnxruntime.transformers.optimizer import optimize_model
from sentence_transformers import SentenceTransformer

from feedbackhub import embeddings

#: The fused graph replaces the plain export only if its outputs match within this (largest absolute difference of
#: the last hidden state on sample texts; float32 reordering stays far below it).
FUSION_TOLERANCE = 1e-3

logger = logging.getLogger(__name__)


def export(base: str, target: Path) -> None:
    """Export model ``base`` into the folder ``target`` (written to a temporary folder, renamed into place)."""
    source = Path(embeddings.model_path(base))
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
