"""Embedding backends: throughput of fp32 torch against ONNX int8 (and fp32) on the same real texts, and how close
their vectors are.

The issue's bar for adopting a faster backend: the whole embedding pipeline at >= 2x the throughput of a bare fp32
``model.encode`` on the same texts in the same run, with a mean cosine >= 0.98 between its vectors and the fp32 ones.
384 AlpacaEval texts (instructions and the judge's explanations, interleaved, as in the recall benchmark) are embedded
in alternating rounds by: the bare fp32 sentence-transformers model (one call, batches of 64); the same model in the
pipeline's batches (``embeddings.encode``: longest first, cut by a token budget), without the database; the bare ONNX
encoders (``feedbackhub.embedding_onnx.OnnxEncoder``, the same call); and the pipeline (``embeddings_embed_pending``:
claim, encode, insert, commit, with the backend's encoder) with fp32 torch and with ONNX int8, each round starting
(untimed) from no vectors. Both wall-clock and the process's CPU time are recorded; best rounds are compared. The ONNX
export is made before the timed part (once, cached under EMBEDDING_CACHE_DIR). Runs alone (``python -m bench.run
--only recall_throughput``) on a database of its own, ``feedbackhub_bench_recall_throughput``, where the recall
benchmark also runs ``measure`` for its throughput part.
"""

from __future__ import annotations

import json
import time
from functools import partial
from typing import Any

from bench import common

NAME = "recall_throughput"
TITLE = "Embedding backends: throughput and agreement with fp32"
DB_NAME = "feedbackhub_bench_recall_throughput"
ALPACA = common.BASE_DIR.parent / "shared" / "data" / "alpaca_eval" / "mixtral_cot_annotations.json"
SOURCE = "bench-recall-throughput"
FULL = {"texts": 384, "rounds": 3}
QUICK = {"texts": 64, "rounds": 1}
TARGET_SPEEDUP = 2.0
TARGET_COSINE = 0.98
CANDIDATE = "onnx-int8"


def texts(n: int) -> list[str]:
    """AlpacaEval instructions and judge explanations, interleaved (the recall benchmark's throughput texts)."""
    import ast  # noqa: PLC0415

    rows = json.loads(ALPACA.read_text())
    instructions, explanations = [], []
    for row in rows:
        instructions.append(row["instruction"])
        raw = row.get("raw_completion")
        try:
            raw = ast.literal_eval(raw) if isinstance(raw, str) else raw
        except (ValueError, SyntaxError):
            raw = {}
        if isinstance(raw, dict) and raw.get("concise_explanation"):
            explanations.append(raw["concise_explanation"])
    mixed = [t for pair in zip(instructions, explanations, strict=False) for t in pair]
    return mixed[:n]


def _items(sample: list[str]) -> list[int]:
    from annotations.recall.models import FeedbackItem, SourceKind  # noqa: PLC0415
    from annotations.recall.text import text_hash  # noqa: PLC0415
    from sessions.models import Conversation, FeedbackEvent, Turn  # noqa: PLC0415

    conv, _ = Conversation.objects.get_or_create(source=SOURCE, external_id="throughput",
                                                 defaults={"content_hash": "0" * 64})
    turn, _ = Turn.objects.get_or_create(conversation=conv, position=1, defaults={"role": "assistant"})
    FeedbackItem.objects.filter(conversation=conv).delete()
    FeedbackEvent.objects.filter(conversation=conv).delete()
    events = FeedbackEvent.objects.bulk_create(
        [FeedbackEvent(conversation=conv, turn=turn, event_key=f"t{i}", kind="comment", text=t)
         for i, t in enumerate(sample)]
    )
    items = FeedbackItem.objects.bulk_create(
        [FeedbackItem(source=SourceKind.FEEDBACK_EVENT, feedback_event=e, conversation=conv, turn=turn, text=t,
                      text_hash=text_hash(t), embedding_pending=False) for e, t in zip(events, sample, strict=True)]
    )
    return [i.pk for i in items]


def measure(sample: list[str], *, rounds: int, log, item_ids: list[int] | None = None) -> dict[str, Any]:  # noqa: ANN001
    """Times (wall and CPU seconds per round) of each way of embedding ``sample``, and the cosine of the ONNX
    vectors to the fp32 ones. ``item_ids``: feedback items holding exactly these texts, for the pipeline rounds
    (made here when not given)."""
    import numpy as np  # noqa: PLC0415

    from annotations.recall import embedding  # noqa: PLC0415
    from annotations.recall.models import Embedding, FeedbackItem  # noqa: PLC0415
    from feedbackhub import embeddings  # noqa: PLC0415

    ids = item_ids if item_ids is not None else _items(sample)
    base = embeddings.split_identity(embeddings.model_name())[0]
    names = {b: embeddings.identity(base, b) for b in embeddings.BACKENDS}
    t0 = time.perf_counter()
    models = {b: embeddings.get_model(name) for b, name in names.items()}  # exports ONNX on first use
    log(f"backends loaded in {time.perf_counter() - t0:.0f} s: {', '.join(names.values())}")
    for model in models.values():
        model.encode(sample[:64], batch_size=64, normalize_embeddings=True)  # warm-up

    def bare(backend: str) -> Any:
        return models[backend].encode(sample, batch_size=embedding.EMBED_BATCH_SIZE, normalize_embeddings=True,
                                      convert_to_numpy=True, show_progress_bar=False)

    active = embedding.active_model_name()

    def reset() -> None:
        # Untimed: the items back to "waiting for a vector", as a save leaves them.
        Embedding.objects.filter(item_id__in=ids).delete()
        FeedbackItem.objects.filter(pk__in=ids).update(embedding_pending=True)

    def pipeline(backend: str) -> None:
        # The embed task's own path (flagged items of the active model: claim, encode, insert, commit) with this
        # backend's encoder, so it only ever claims these items, whatever else the database holds.
        encode = partial(embeddings.encode, name=names[backend], batch_size=embedding.EMBED_BATCH_SIZE)
        result = embedding.embeddings_embed_pending(model=active, encode=encode)
        assert result.embedded >= len(ids), result

    def batched(backend: str) -> Any:
        # The pipeline's own batching (embeddings.encode: longest first, cut by a token budget) without the database:
        # the pipeline against this is its overhead alone.
        return embeddings.encode(sample, name=names[backend], batch_size=embedding.EMBED_BATCH_SIZE)

    steps = [("bare", "torch"), ("batched", "torch"), ("pipeline", "torch"), ("bare", CANDIDATE),
             ("pipeline", CANDIDATE), ("bare", "onnx")]
    wall: dict[str, list[float]] = {f"{kind} {b}": [] for kind, b in steps}
    cpu: dict[str, list[float]] = {f"{kind} {b}": [] for kind, b in steps}
    vectors: dict[str, Any] = {}
    for round_no in range(rounds):
        for kind, backend in steps if round_no % 2 == 0 else list(reversed(steps)):
            key = f"{kind} {backend}"
            if kind == "pipeline":
                reset()
            c, t = time.process_time(), time.perf_counter()
            if kind == "bare":
                vectors[backend] = bare(backend)
            elif kind == "batched":
                vectors[f"{backend} batched"] = batched(backend)
            else:
                pipeline(backend)
            wall[key].append(time.perf_counter() - t)
            cpu[key].append(time.process_time() - c)
            if kind == "pipeline" and names[backend] != active:
                # A candidate's vectors are deleted at once: they never stand under another name.
                Embedding.objects.filter(item_id__in=ids).delete()
        log(f"round {round_no + 1}: " + ", ".join(f"{k} {v[-1]:.1f} s" for k, v in wall.items()))
    reference = np.asarray(vectors["torch"], dtype=np.float32)
    agreement = {}
    # The token-budget batches change no vector: their distance to the fixed batches' is float rounding.
    batching_error = float(np.abs(np.asarray(vectors["torch batched"]) - reference).max())
    for backend in ("onnx", CANDIDATE):
        cos = (np.asarray(vectors[backend], dtype=np.float32) * reference).sum(axis=1)
        agreement[backend] = {"mean": float(cos.mean()), "min": float(cos.min()), "p05": float(np.percentile(cos, 5))}
    stored = Embedding.objects.filter(item_id__in=ids, model=active).count()
    # Real texts, perhaps some of the recall benchmark's queries: their vectors must not join its k-NN data set.
    Embedding.objects.filter(item_id__in=ids).delete()
    return {"texts": len(sample), "mean_chars": sum(map(len, sample)) / len(sample), "names": names, "wall_s": wall,
            "cpu_s": cpu, "cosine": agreement, "stored_vectors": stored, "batching_max_abs_diff": batching_error}


def summary(tp: dict[str, Any]) -> dict[str, Any]:
    """Verdicts and a table for ``measure``'s result (best rounds)."""
    best = {k: min(v) for k, v in tp["wall_s"].items()}
    best_cpu = {k: min(v) for k, v in tp["cpu_s"].items()}
    n = tp["texts"]
    speedup = best["bare torch"] / best[f"pipeline {CANDIDATE}"]
    speedup_cpu = best_cpu["bare torch"] / best_cpu[f"pipeline {CANDIDATE}"]
    cosine = tp["cosine"][CANDIDATE]["mean"]
    rows = [[k, len(tp["wall_s"][k]), f"{best[k]:.2f}", f"{best_cpu[k]:.2f}", f"{n / best[k]:.1f}",
             f"{best['bare torch'] / best[k]:.2f}"] for k in tp["wall_s"]]
    return {
        "speedup": speedup, "speedup_cpu": speedup_cpu, "cosine": cosine,
        "verdicts": [
            {"name": f"ONNX int8 pipeline throughput vs bare fp32 model.encode ({n} texts; adoption bar)",
             "target": f">= {TARGET_SPEEDUP:.0f}x", "measured": f"{speedup:.2f}x (CPU time {speedup_cpu:.2f}x)",
             "value": speedup, "pass": speedup >= TARGET_SPEEDUP},
            {"name": "ONNX int8 vectors: mean cosine to fp32 (adoption bar)", "target": f">= {TARGET_COSINE}",
             "measured": f"{cosine:.4f} (min {tp['cosine'][CANDIDATE]['min']:.4f})", "value": cosine,
             "pass": cosine >= TARGET_COSINE},
        ],
        "table": {"title": "Embedding backends (seconds per round, best round; x = bare fp32 time / this time)",
                  "columns": ["step", "rounds", "best wall s", "best CPU s", "texts/s", "x fp32"], "rows": rows},
    }


def run(ctx: common.Context) -> dict[str, Any]:
    sizes = dict(QUICK if ctx.quick else FULL)
    sizes["rounds"] = min(sizes["rounds"], ctx.repeats)  # --repeats 1: one round of each step
    base = common.database_url(quick=False)
    db_url = base.rsplit("/", 1)[0] + "/" + DB_NAME + (common.QUICK_DB_SUFFIX if ctx.quick else "")
    ctx.log(f"embedding backends on {db_url.rsplit('/', 1)[-1]}: {sizes['texts']} texts x {sizes['rounds']} rounds")
    common.migrate(db_url)
    common.setup_django(db_url)
    from feedbackhub import embeddings  # noqa: PLC0415

    tp = measure(texts(sizes["texts"]), rounds=sizes["rounds"], log=ctx.log)
    s = summary(tp)
    return {
        "name": NAME,
        "title": TITLE,
        "quick": ctx.quick,
        "repeats": sizes["rounds"],
        "verdicts": s["verdicts"],
        "tables": [s["table"], {
            "title": "Agreement with fp32 torch vectors (cosine, same texts)",
            "columns": ["backend", "mean", "5th percentile", "min"],
            "rows": [[tp["names"][b], f"{c['mean']:.4f}", f"{c['p05']:.4f}", f"{c['min']:.4f}"]
                     for b, c in tp["cosine"].items()],
        }],
        "notes": [
            f"Texts: {tp['texts']} AlpacaEval instructions and judge explanations, {tp['mean_chars']:.0f} characters "
            "on average; every step in one process with the libraries' default threads (one per core).",
            "ONNX: the packaged weights exported with torch.onnx (opset 17), int8 = onnxruntime dynamic quantisation "
            "(int8 weights per channel, activations quantised at run time); pooling and normalisation in numpy.",
            "The pipeline rows are embeddings_embed_pending for that model: claim, encode, INSERT, commit. It encodes "
            "through embeddings.encode, which sorts texts by token count and cuts batches at 64 texts or "
            f"{embeddings.ENCODE_TOKEN_BUDGET} padded tokens; 'batched torch' is that call alone, on the same texts, "
            "so pipeline against it is the pipeline's own overhead. Largest difference between its vectors and the "
            f"fixed batches': {tp.get('batching_max_abs_diff', float('nan')):.1e}.",
        ],
        "data": tp,
    }
