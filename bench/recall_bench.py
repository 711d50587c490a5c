"""Semantic recall: embedding throughput of the whole pipeline against a bare model.encode, and k-NN search over one
million vectors (recall@10 against exact search, latency, selective filters).

Everything runs in a child process on a database of its own, ``feedbackhub_bench_recall``, so this benchmark never
touches the development or test databases and can run after others in one ``make bench``.

1. Throughput: 384 real texts from the AlpacaEval file (instructions and the judge's written explanations) become
feedback items. In alternating rounds the bare model encodes them all in one call (``model.encode``, batches of 64,
normalised) and the pipeline embeds them the way the worker does (``embeddings_embed_pending``: claim 256 items with
FOR UPDATE SKIP LOCKED, encode them through ``embeddings.encode``, longest first in batches of at most 64 texts and
1,024 padded tokens, INSERT ... ON CONFLICT DO NOTHING, commit), their vectors deleted (untimed) before each pipeline
round; a third step encodes the texts in the pipeline's batches without the database, so the pipeline's own overhead
shows apart from what its batching gains. The ratio compares the best round of each. These rounds run on the
throughput benchmark's database (``feedbackhub_bench_recall_throughput``, a few hundred items): what is measured is
the pipeline against the model. What writing a vector into the million-vector HNSW index costs is measured on its own
(256 vectors inserted in a transaction that is rolled back) and reported beside the searches.
2. k-NN: the data set is built once and reused (version 3, docs/recall.md says why): 14,336 real texts
(AlpacaEval instructions, judge explanations, answer paragraphs) are embedded; 200 of them, picked at random, are
the queries and never feed the data set; from the other 14,136 one million vectors are made (each a step from a real
vector toward one of its 10 nearest real vectors plus noise shaped like the real vectors' covariance, normalised),
stored as feedback items with filter columns (1% of them with user role "auditor") and their vectors, COPYed in
binary, then the migration's HNSW index (its definition read back from the database) is built. Exact top-10 is
computed in numpy on the float32 vectors; the index search is the app's own ``nearest_ids`` (transaction, iterative
scan settings, join to the items, re-sort) at several ``ef_search`` values and, for the 1% filter, in both iterative
scan modes, timed from one client after an untimed warm-up pass over all queries, with the load average noted.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from bench import common

NAME = "recall"
TITLE = "Semantic recall: embedding throughput and k-NN over 1M vectors"
DB_NAME = "feedbackhub_bench_recall"
ALPACA = common.BASE_DIR.parent / "shared" / "data" / "alpaca_eval" / "mixtral_cot_annotations.json"
# 3: 14,136 real vectors (instructions, explanations, answer paragraphs), each synthetic vector a step from one of
# them toward one of its real neighbours plus noise shaped like the real vectors' covariance. Versions 1 and 2
# blended 1,200 real vectors and added isotropic noise of norm 0.39, which buried the real neighbour structure (a
# query's 10th and 11th neighbours tied in 68% of queries at a million vectors, 40% now); see docs/recall.md.
DATASET_VERSION = 3
SOURCE = "bench-recall"

# base_texts: real vectors the data set is made from (0: every k-NN text that is not a query); queries are held out.
FULL = {"vectors": 1_000_000, "base_texts": 14_136, "queries": 200, "throughput_texts": 384, "rounds": 3}
QUICK = {"vectors": 20_000, "base_texts": 1_000, "queries": 30, "throughput_texts": 64, "rounds": 1}
K = 10
RARE_ROLE = "auditor"
RARE_SHARE = 0.01
EF_SEARCH_VALUES = (40, 64, 100, 150, 200)
# Generator of the k-NN data set (version 3): each vector is (1 - t) * a + t * b + NOISE * z, normalised, where a is
# a random real vector, b one of its KNN_NEIGHBOURS nearest real vectors, t uniform in [0, STEP_MAX] and z Gaussian
# with the real vectors' covariance. NOISE was chosen so the distances of held-out real texts to their 1st and 10th
# neighbours follow the real texts' own curve (docs/recall.md, "Is the data set realistic?").
KNN_NEIGHBOURS = 10
STEP_MAX = 0.5
NOISE = 0.6
TARGET_RATIO = 0.90
TARGET_RECALL = 0.95
TARGET_P95_MS = 15.0
TARGET_FULL_SHARE = 0.99
# Distance within which a hit ties with the 10th exact neighbour (ann-benchmarks' default epsilon; about the
# rounding error of a half-precision cosine distance).
TIE_EPSILON = 1e-3


def database_url(*, quick: bool) -> str:
    url = common.database_url(quick=False)
    parts = urlsplit(url)
    name = DB_NAME + (common.QUICK_DB_SUFFIX if quick else "")
    return urlunsplit(parts._replace(path=f"/{name}"))


# --- texts ---------------------------------------------------------------------------------------------------------


def _explanation(row: dict) -> str:
    """The judge's written explanation of an AlpacaEval record ('' when it has none)."""
    raw = row.get("raw_completion")
    if isinstance(raw, str):
        try:
            raw = ast.literal_eval(raw)
        except (ValueError, SyntaxError):
            raw = {}
    return (raw.get("concise_explanation") or "") if isinstance(raw, dict) else ""


def _alpaca_texts() -> list[str]:
    """Real texts, in a fixed order: instructions, the judge's explanations, first paragraphs of the answers."""
    rows = json.loads(ALPACA.read_text())
    instructions, explanations, answers = [], [], []
    for row in rows:
        instructions.append(row["instruction"])
        if explanation := _explanation(row):
            explanations.append(explanation)
        for key in ("output_1", "output_2"):
            first = (row.get(key) or "").strip().split("\n\n", 1)[0]
            if len(first) > 40:
                answers.append(first)
    seen: set[str] = set()
    out = []
    for text in [*instructions, *explanations, *answers]:
        if text not in seen:
            seen.add(text)
            out.append(text)
    return out


def _throughput_texts(n: int) -> list[str]:
    texts = _alpaca_texts()
    rows = json.loads(ALPACA.read_text())
    # Interleave instructions and explanations: the mix of lengths the pipeline meets.
    mixed = [t for pair in zip(texts[: len(rows)], texts[len(rows) : 2 * len(rows)], strict=False) for t in pair]
    return mixed[:n]


def _knn_texts() -> list[str]:
    """The k-NN data set's real texts, in a fixed order: instructions, the judge's explanations, then the answers'
    paragraphs (over 40 characters) and their sentences (over 30 characters), each group shuffled with a fixed seed;
    no duplicates. Feedback quotes, paraphrases and comments on answers, so answer text is the nearest real stand-in
    for the bulk of the items."""
    import re  # noqa: PLC0415

    import numpy as np  # noqa: PLC0415

    rows = json.loads(ALPACA.read_text())
    out: list[str] = []
    seen: set[str] = set()

    def add(text: str) -> None:
        text = text.strip()
        if text and text not in seen:
            seen.add(text)
            out.append(text)

    for row in rows:
        add(row["instruction"])
    for row in rows:
        if explanation := _explanation(row):
            add(explanation)
    paragraphs: list[str] = []
    sentences: list[str] = []
    for row in rows:
        for key in ("output_1", "output_2"):
            for paragraph in (row.get(key) or "").split("\n"):
                paragraph = paragraph.strip()
                if len(paragraph) > 40:
                    paragraphs.append(paragraph)
                sentences.extend(s.strip() for s in re.split(r"(?<=[.!?])\s+", paragraph) if len(s.strip()) > 30)
    rng = np.random.default_rng(0)
    for i in rng.permutation(len(paragraphs)):
        add(paragraphs[i])
    for i in rng.permutation(len(sentences)):
        add(sentences[i])
    return out


def _knn_split(sizes: dict[str, int], quick: bool, log) -> tuple[Any, Any]:  # noqa: ANN001
    """(base vectors, query vectors): the first ``base_texts + queries`` k-NN texts (all of them when base_texts is
    0), embedded once and cached, split at random (seed 7) into held-out queries and the real vectors the data set
    is made from."""
    import numpy as np  # noqa: PLC0415

    texts = _knn_texts()
    if sizes["base_texts"]:
        texts = texts[: sizes["base_texts"] + sizes["queries"]]
    vectors = _encode_cached(_cache_dir(quick) / f"knn-{len(texts)}.npy", texts, log)
    order = np.random.default_rng(7).permutation(len(texts))
    return vectors[np.sort(order[sizes["queries"] :])], vectors[order[: sizes["queries"]]]


def _synthesize(base: Any, n: int, rng: Any) -> Any:
    """``n`` normalised float32 vectors made from the real vectors ``base`` (see KNN_NEIGHBOURS, STEP_MAX, NOISE)."""
    import numpy as np  # noqa: PLC0415

    neighbours = np.empty((len(base), KNN_NEIGHBOURS), dtype=np.int64)
    for lo in range(0, len(base), 4096):
        sims = base[lo : lo + 4096] @ base.T
        sims[np.arange(sims.shape[0]), np.arange(lo, lo + sims.shape[0])] = -np.inf  # not itself
        neighbours[lo : lo + 4096] = np.argpartition(-sims, KNN_NEIGHBOURS, axis=1)[:, :KNN_NEIGHBOURS]
    values, axes = np.linalg.eigh(np.cov(base.T))
    shaper = (axes * np.sqrt(np.clip(values, 0, None))).T.astype(np.float32)  # z @ shaper has the real covariance
    out = np.empty((n, base.shape[1]), dtype=np.float32)
    step = 100_000
    for lo in range(0, n, step):
        m = min(n, lo + step) - lo
        a = rng.integers(0, len(base), m)
        b = neighbours[a, rng.integers(0, KNN_NEIGHBOURS, m)]
        t = rng.uniform(0.0, STEP_MAX, (m, 1)).astype(np.float32)
        noise = rng.standard_normal((m, base.shape[1]), dtype=np.float32) @ shaper
        v = (1 - t) * base[a] + t * base[b] + NOISE * noise
        out[lo : lo + m] = v / np.linalg.norm(v, axis=1, keepdims=True)
    return out


# --- child process ---------------------------------------------------------------------------------------------------


def _cache_dir(quick: bool) -> Path:
    path = common.WORK_DIR / ("quick" if quick else "") / "recall"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _encode_cached(path: Path, texts: list[str], log) -> Any:  # noqa: ANN001
    import numpy as np  # noqa: PLC0415

    from feedbackhub import embeddings  # noqa: PLC0415

    if path.is_file():
        cached = np.load(path)
        if cached.shape[0] == len(texts):
            return cached
    t0 = time.perf_counter()
    vectors = embeddings.encode(texts)
    np.save(path, vectors)
    log(f"embedded {len(texts)} texts in {time.perf_counter() - t0:.0f} s -> {path.name}")
    return vectors


def _throughput(sizes: dict[str, int], log) -> dict[str, Any]:  # noqa: ANN001
    """Bare fp32 model.encode against the pipeline, and the ONNX backends against both, on the same real texts in
    alternating rounds (``bench/recall_throughput_bench.py``, which also runs alone on a database of its own)."""
    from bench import recall_throughput_bench as backends  # noqa: PLC0415

    tp = backends.measure(backends.texts(sizes["throughput_texts"]), rounds=sizes["rounds"], log=log)
    return {"texts": tp["texts"], "bare_s": tp["wall_s"]["bare torch"], "pipeline_s": tp["wall_s"]["pipeline torch"],
            "batched_s": tp["wall_s"].get("batched torch", []),
            "stored": tp["stored_vectors"], "mean_chars": tp["mean_chars"], "backends": tp}


def _dataset(sizes: dict[str, int], quick: bool, log) -> dict[str, Any]:  # noqa: ANN001
    """Build (or reuse) the k-NN data set; returns its vectors (float32, row i = item id ids[i]) and facts."""
    import numpy as np  # noqa: PLC0415
    from django.db import connection  # noqa: PLC0415
    from pgvector.psycopg import register_vector  # noqa: PLC0415

    from annotations.recall.selectors import active_model_name  # noqa: PLC0415
    from sessions.models import Conversation  # noqa: PLC0415

    n = sizes["vectors"]
    cache = _cache_dir(quick)
    spec = {"version": DATASET_VERSION, "vectors": n, "base_texts": sizes["base_texts"], "queries": sizes["queries"],
            "generator": [KNN_NEIGHBOURS, STEP_MAX, NOISE]}
    vec_path = cache / f"vectors-{n}.npy"
    ids_path = cache / f"ids-{n}.npy"
    roles_path = cache / f"rare-{n}.npy"
    marker = Conversation.objects.filter(source=SOURCE, external_id="knn").first()
    stored = {k: v for k, v in (marker.metadata if marker else {}).items() if k != "build"}
    if marker and stored == spec and vec_path.is_file() and ids_path.is_file() and roles_path.is_file():
        log(f"reusing the k-NN data set ({n:,} vectors)")
        build = marker.metadata.get("build", {})
        with connection.cursor() as cursor:
            cursor.execute("SELECT indexdef FROM pg_indexes WHERE indexname = 'embedding_vector_hnsw'")
            index_sql = cursor.fetchone()[0]
        if build.get("index") != index_sql.split(" USING ", 1)[1]:
            # A migration changed the index since the build: the migration rebuilt it; time a build of our own.
            log("the index definition changed since the data set was built: rebuilding the index")
            build = {**build, **_build_index(index_sql, log)}
            marker.metadata = {**spec, "build": build}
            marker.save(update_fields=["metadata"])
        return {"vectors": np.load(vec_path, mmap_mode="r"), "ids": np.load(ids_path), "rare": np.load(roles_path),
                "built": False, "build": build}

    base, _ = _knn_split(sizes, quick, log)
    rng = np.random.default_rng(42)
    model = active_model_name()
    timings: dict[str, float] = {}
    with connection.cursor() as cursor:
        # This database is the benchmark's own: start from empty tables (a cascade through the ORM would load a
        # million rows into memory).
        cursor.execute("TRUNCATE recall_embedding, recall_feedbackitem, conversations_feedbackevent, "
                       "conversations_turn, conversations_conversation RESTART IDENTITY CASCADE")
    conversations = 1000
    convs = Conversation.objects.bulk_create(
        [Conversation(source=SOURCE, external_id=f"knn-{c}", content_hash="0" * 64,
                      environment=("prod", "prod", "prod", "test", "dev")[c % 5], model_version=f"m-{c % 4}",
                      user_role="customer") for c in range(conversations)]
    )
    from sessions.models import Turn  # noqa: PLC0415

    turns = Turn.objects.bulk_create([Turn(conversation=c, position=1, role="assistant", content="")
                                      for c in convs])
    turn_of = [(t.conversation_id, t.pk) for t in turns]
    rare = rng.random(n) < RARE_SHARE
    vectors = _synthesize(base, n, rng)
    log(f"made {n:,} vectors from {len(base):,} real ones")
    t0 = time.perf_counter()
    raw = connection.connection  # the psycopg connection, for COPY
    register_vector(raw)
    with connection.cursor() as cursor:
        cursor.execute("SELECT COALESCE(MAX(id), 0) FROM conversations_feedbackevent")
        event_base = cursor.fetchone()[0] + 1
        cursor.execute("SELECT COALESCE(MAX(id), 0) FROM recall_feedbackitem")
        item_base = cursor.fetchone()[0] + 1
    ids = np.arange(item_base, item_base + n, dtype=np.int64)
    with raw.cursor() as cur:
        with cur.copy("COPY conversations_feedbackevent (id, conversation_id, turn_id, event_key, kind, categories, "
                      "text, correction, is_negative, created_at, metadata) FROM STDIN") as cp:
            for r in range(n):
                conv_id, turn_id = turn_of[r % conversations]
                cp.write_row((event_base + r, conv_id, turn_id, f"k{r}", "thumbs_down", "{}", "", "", True,
                              "2026-01-01T00:00:00Z", "{}"))
        log(f"copied {n:,} feedback events")
        with cur.copy("COPY recall_feedbackitem (id, source, feedback_event_id, conversation_id, turn_id, environment, "
                      "model_version, user_role, app_version, occurred_at, tag_ids, kind, is_negative, is_resolved, "
                      "is_active, text, text_hash, embedding_pending, created_at, updated_at) FROM STDIN") as cp:
            for r in range(n):
                c = r % conversations
                conv_id, turn_id = turn_of[c]
                month = 1 + (r % 365) // 31 % 12
                cp.write_row((int(ids[r]), "feedback", event_base + r, conv_id, turn_id,
                              ("prod", "prod", "prod", "test", "dev")[c % 5], f"m-{c % 4}",
                              RARE_ROLE if rare[r] else "customer", "1.0", f"2025-{month:02d}-01T00:00:00Z",
                              f"{{{1 + r % 8}}}", "thumbs_down", True, r % 3 == 0, True, f"synthetic {r}",
                              f"h{r}", False, "2026-01-01T00:00:00Z", "2026-01-01T00:00:00Z"))
        log(f"copied {n:,} feedback items")
        # The migration's index, exactly: its definition is read back before the bulk load and replayed after it.
        cur.execute("SELECT indexdef FROM pg_indexes WHERE indexname = 'embedding_vector_hnsw'")
        index_sql = cur.fetchone()[0]
        cur.execute("DROP INDEX IF EXISTS embedding_vector_hnsw")
        with cur.copy("COPY recall_embedding (item_id, model, text_hash, vector, created_at) FROM STDIN "
                      "WITH (FORMAT BINARY)") as cp:
            cp.set_types(["int8", "varchar", "varchar", "vector", "timestamptz"])
            from datetime import UTC, datetime  # noqa: PLC0415

            now = datetime.now(UTC)
            for r in range(n):
                cp.write_row((int(ids[r]), model, f"h{r}", vectors[r], now))
        raw.commit() if not raw.autocommit else None
    timings["copy_s"] = time.perf_counter() - t0
    log(f"copied {n:,} vectors in {timings['copy_s']:.0f} s; building the HNSW index")
    with connection.cursor() as cursor:
        for table in ("conversations_feedbackevent", "recall_feedbackitem", "recall_embedding"):
            cursor.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT MAX(id) FROM {table}))")
        cursor.execute("VACUUM ANALYZE recall_feedbackitem")
    build = {"copy_s": round(timings["copy_s"], 1), **_build_index(index_sql, log), "real_vectors": len(base)}
    np.save(vec_path, vectors)
    np.save(ids_path, ids)
    np.save(roles_path, rare)
    Conversation.objects.update_or_create(source=SOURCE, external_id="knn",
                                          defaults={"content_hash": "0" * 64, "metadata": {**spec, "build": build}})
    return {"vectors": vectors, "ids": ids, "rare": rare, "built": True, "build": build}


def _build_index(index_sql: str, log) -> dict[str, Any]:  # noqa: ANN001
    """(Re)build the HNSW index ``index_sql`` defines, timed; returns its build time, size and definition."""
    from django.db import connection  # noqa: PLC0415

    with connection.cursor() as cursor:
        cursor.execute("DROP INDEX IF EXISTS embedding_vector_hnsw")
        cursor.execute("SET maintenance_work_mem = '3GB'")
        cursor.execute("SET max_parallel_maintenance_workers = 2")
        t0 = time.perf_counter()
        cursor.execute(index_sql)
        index_s = time.perf_counter() - t0
        cursor.execute("VACUUM ANALYZE recall_embedding")
        cursor.execute("SELECT pg_relation_size('embedding_vector_hnsw'), pg_relation_size('recall_embedding')")
        index_bytes, table_bytes = cursor.fetchone()
    log(f"index built in {index_s:.0f} s ({index_bytes / 2**20:.0f} MiB)")
    return {"index_s": round(index_s, 1), "index_mib": round(index_bytes / 2**20),
            "table_mib": round(table_bytes / 2**20), "index": index_sql.split(" USING ", 1)[1],
            "load_average": [round(x, 2) for x in os.getloadavg()]}


def _exact_top(vectors: Any, ids: Any, queries: Any, mask: Any = None) -> tuple[list[list[int]], list[float]]:
    """(exact top-K item ids per query, each query's K-th best similarity) by float32 cosine (dot products of
    normalised vectors): one pass over the vectors for all queries at once, 100k rows at a time."""
    import numpy as np  # noqa: PLC0415

    queries = np.asarray(queries, dtype=np.float32)
    best_scores = np.full((len(queries), 0), -np.inf, dtype=np.float32)
    best_ids = np.zeros((len(queries), 0), dtype=np.int64)
    chunk = 100_000
    for lo in range(0, len(ids), chunk):
        hi = min(len(ids), lo + chunk)
        scores = queries @ np.asarray(vectors[lo:hi]).T  # (queries, rows)
        if mask is not None:
            scores[:, ~np.asarray(mask[lo:hi])] = -np.inf
        top = np.argpartition(-scores, K, axis=1)[:, :K]
        best_scores = np.concatenate([best_scores, np.take_along_axis(scores, top, axis=1)], axis=1)
        best_ids = np.concatenate([best_ids, np.asarray(ids[lo:hi])[top]], axis=1)
        keep = np.argsort(-best_scores, axis=1)[:, :K]
        best_scores = np.take_along_axis(best_scores, keep, axis=1)
        best_ids = np.take_along_axis(best_ids, keep, axis=1)
    top_ids = [[int(i) for i, s in zip(row_ids, row_scores, strict=True) if np.isfinite(s)]
               for row_ids, row_scores in zip(best_ids, best_scores, strict=True)]
    return top_ids, [float(row[-1]) for row in best_scores]


def _search(queries: Any, truth: tuple[list[list[int]], list[float]], data: dict[str, Any], *, ef: int,
            filters: Any = None, iterative: bool | str = True) -> dict[str, Any]:
    """nearest_ids over ``queries``, timed after a warm-up pass: recall@10 against the exact top 10, and the
    tie-aware recall (a hit counts when its exact distance is within TIE_EPSILON of the 10th exact neighbour's,
    as ann-benchmarks counts k-NN recall)."""
    import numpy as np  # noqa: PLC0415

    from annotations.recall.selectors import active_model_name, nearest_ids  # noqa: PLC0415

    model = active_model_name()
    for q in queries:  # warm-up: the index pages into memory
        nearest_ids(query_vector=q, k=K, filters=filters, model=model, ef_search=ef, iterative=iterative)
    times: list[float] = []
    recalls: list[float] = []
    tie_recalls: list[float] = []
    full = 0
    load = os.getloadavg()[0]
    first_id = int(data["ids"][0])  # the data set's ids are consecutive
    for q, exact, kth in zip(queries, *truth, strict=True):
        t0 = time.perf_counter()
        hits = nearest_ids(query_vector=q, k=K, filters=filters, model=model, ef_search=ef, iterative=iterative)
        times.append((time.perf_counter() - t0) * 1000)
        got = {pk for pk, _ in hits}
        recalls.append(len(got & set(exact)) / max(1, len(exact)))
        rows = [pk - first_id for pk in got if 0 <= pk - first_id < len(data["ids"])]
        sims = np.asarray(data["vectors"][sorted(rows)]) @ np.asarray(q, dtype=np.float32) if rows else []
        tie_recalls.append(min(1.0, sum(float(x) >= kth - TIE_EPSILON for x in sims) / max(1, len(exact))))
        full += len(hits) == K
    return {"ms": times, "recall": sum(recalls) / len(recalls), "tie_recall": sum(tie_recalls) / len(tie_recalls),
            "full_share": full / len(queries), "load_average": [round(load, 2), round(os.getloadavg()[0], 2)]}


def _index_write_ms(data: dict[str, Any], log, n: int = 256) -> float:  # noqa: ANN001
    """Milliseconds to write one vector into the full table with its HNSW index: ``n`` vectors near stored ones
    inserted in one transaction that is rolled back (the data set is left as it was)."""
    import numpy as np  # noqa: PLC0415
    from django.db import connection, transaction  # noqa: PLC0415

    from annotations.recall.selectors import active_model_name  # noqa: PLC0415
    from feedbackhub.vectors import vector_literal  # noqa: PLC0415

    rng = np.random.default_rng(3)
    picks = np.sort(rng.choice(len(data["ids"]), n, replace=False))
    vectors = np.asarray(data["vectors"][picks], dtype=np.float32)
    vectors = vectors + rng.normal(0, 0.02, vectors.shape).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    model = active_model_name()
    rows = [(int(data["ids"][i]), model, f"write-{j}", vector_literal(v))
            for j, (i, v) in enumerate(zip(picks, vectors, strict=True))]
    with transaction.atomic(), connection.cursor() as cursor:
        t0 = time.perf_counter()
        cursor.executemany("INSERT INTO recall_embedding (item_id, model, text_hash, vector, created_at) "
                           "VALUES (%s, %s, %s, %s::vector, now())", rows)
        ms = (time.perf_counter() - t0) * 1000 / n
        transaction.set_rollback(True)
    log(f"writing a vector into the {len(data['ids']):,}-vector index: {ms:.1f} ms")
    return ms


def child(quick: bool, out_path: str, *, part: str) -> None:
    """``part`` "throughput" (run on the throughput benchmark's database) or "knn" (on the million vectors)."""
    sizes = QUICK if quick else FULL

    def log(message: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)

    if part == "throughput":
        Path(out_path).write_text(json.dumps(_throughput(sizes, log)))
        return

    import numpy as np  # noqa: PLC0415

    from annotations.recall.selectors import RecallFilters, default_ef_search  # noqa: PLC0415
    from feedbackhub import embeddings  # noqa: PLC0415

    t0 = time.perf_counter()
    embeddings.get_model()
    load_s = time.perf_counter() - t0
    ef_default = default_ef_search()
    data = _dataset(sizes, quick, log)
    write_ms = _index_write_ms(data, log)
    _, queries = _knn_split(sizes, quick, log)
    log("exact search (numpy)")
    truth = _exact_top(data["vectors"], data["ids"], queries)
    truth_rare = _exact_top(data["vectors"], data["ids"], queries, mask=data["rare"])
    searches = {}
    for ef in sorted({ef_default, *EF_SEARCH_VALUES}):
        searches[ef] = _search(queries, truth, data, ef=ef)
        log(f"ef_search={ef}: recall@10 {searches[ef]['recall']:.3f}, "
            f"p95 {common.percentile(searches[ef]['ms'], 95):.1f} ms")
    rare = _search(queries, truth_rare, data, ef=ef_default, filters=RecallFilters(user_role=RARE_ROLE))
    log(f"1% filter: {rare['full_share']:.1%} full, recall {rare['recall']:.3f}")
    rare_strict = _search(queries, truth_rare, data, ef=ef_default, filters=RecallFilters(user_role=RARE_ROLE),
                          iterative="strict_order")
    log(f"1% filter, strict order: {rare_strict['full_share']:.1%} full, recall {rare_strict['recall']:.3f}")
    result = {
        "sizes": sizes, "load_s": load_s, "write_ms": write_ms, "build": data["build"], "built": data["built"],
        "rare_rows": int(np.asarray(data["rare"]).sum()), "ef_default": ef_default,
        "searches": {str(k): v for k, v in searches.items()}, "rare": rare, "rare_strict": rare_strict,
    }
    Path(out_path).write_text(json.dumps(result))


# --- parent ----------------------------------------------------------------------------------------------------------


def run(ctx: common.Context) -> dict[str, Any]:
    db_url = database_url(quick=ctx.quick)
    ctx.log(f"recall benchmark on {db_url.rsplit('/', 1)[-1]}")
    common.migrate(db_url)
    # The throughput rounds run on the throughput benchmark's database (a few hundred items), the searches on the
    # million vectors; writing into that index is timed on its own (docs/recall.md, "Numbers").
    from bench import recall_throughput_bench  # noqa: PLC0415

    tp_url = db_url.rsplit("/", 1)[0] + "/" + recall_throughput_bench.DB_NAME + (
        common.QUICK_DB_SUFFIX if ctx.quick else "")
    common.migrate(tp_url)
    parts = {}
    with tempfile.TemporaryDirectory() as tmp:
        for part, url in (("throughput", tp_url), ("knn", db_url)):
            out = Path(tmp) / f"{part}.json"
            env = common.bench_environment(url)
            env["DJANGO_SETTINGS_MODULE"] = "feedbackhub.settings"
            subprocess.run([sys.executable, "-m", "bench.recall_bench", "--child", part, "--out", str(out),
                            *(["--quick"] if ctx.quick else [])], env=env, cwd=common.BASE_DIR, check=True)
            parts[part] = json.loads(out.read_text())
    return _result(ctx, {**parts["knn"], "throughput": parts["throughput"]})


def _backend_summary(tp: dict[str, Any]) -> dict[str, Any]:
    from bench import recall_throughput_bench as backends  # noqa: PLC0415

    return backends.summary(tp["backends"])


def _result(ctx: common.Context, data: dict[str, Any]) -> dict[str, Any]:
    sizes = data["sizes"]
    tp = data["throughput"]
    bare, pipe = min(tp["bare_s"]), min(tp["pipeline_s"])
    ratio = bare / pipe
    n = sizes["vectors"]
    default = data["searches"][str(data["ef_default"])]
    p95 = common.percentile(default["ms"], 95)
    rare = data["rare"]
    rows = []

    def row(label: str, s: dict[str, Any]) -> list[Any]:
        tie = f"{s['tie_recall']:.3f}" if "tie_recall" in s else "-"
        load = "-".join(f"{x:.1f}" for x in s.get("load_average", []))
        return [label, len(s["ms"]), f"{s['recall']:.3f}", tie, f"{common.percentile(s['ms'], 50):.1f}",
                f"{common.percentile(s['ms'], 95):.1f}", f"{s['full_share']:.1%}", load]

    for ef, s in sorted(data["searches"].items(), key=lambda kv: int(kv[0])):
        rows.append(row(f"no filter, ef_search={ef}" + (" (default)" if int(ef) == data["ef_default"] else ""), s))
    share = f"{data['rare_rows'] / n:.1%}"
    rows.append(row(f"user role filter matching {share} of rows, relaxed_order iterative scan", rare))
    if "rare_strict" in data:
        rows.append(row(f"user role filter matching {share} of rows, strict_order iterative scan",
                        data["rare_strict"]))
    build = data.get("build", {})
    return {
        "name": NAME,
        "title": TITLE,
        "quick": ctx.quick,
        "repeats": sizes["rounds"],
        "verdicts": [
            {"name": f"Embedding pipeline throughput vs bare model.encode ({tp['texts']} texts)",
             "target": f">= {TARGET_RATIO:.2f}", "measured": f"{ratio:.2f} ({tp['texts'] / pipe:.1f} vs "
             f"{tp['texts'] / bare:.1f} texts/s)", "value": ratio, "pass": ratio >= TARGET_RATIO},
            *([{"name": "Pipeline vs the same batches encoded alone: its own overhead (informative)", "target": "-",
                "measured": f"{min(tp['batched_s']) / pipe:.2f}", "value": min(tp["batched_s"]) / pipe,
                "pass": None}] if tp.get("batched_s") else []),
            *(_backend_summary(tp)["verdicts"] if "backends" in tp else []),
            {"name": f"k-NN recall@10 vs exact search, {n:,} vectors", "target": f">= {TARGET_RECALL}",
             "measured": f"{default['recall']:.3f}", "value": default["recall"],
             "pass": default["recall"] >= TARGET_RECALL},
            {"name": f"k-NN single-client p95, {n:,} vectors", "target": f"<= {TARGET_P95_MS:.0f} ms",
             "measured": f"{p95:.1f} ms", "value": p95, "pass": p95 <= TARGET_P95_MS},
            {"name": "Queries returning 10 results with a filter matching 1% of rows",
             "target": f">= {TARGET_FULL_SHARE:.0%}", "measured": f"{rare['full_share']:.1%}",
             "value": rare["full_share"], "pass": rare["full_share"] >= TARGET_FULL_SHARE},
        ],
        "tables": [
            {"title": "Embedding throughput (seconds per round, best round compared)",
             "columns": ["step", "texts", "rounds", "best s", "all rounds s", "texts/s"],
             "rows": [
                 ["bare model.encode (one call, batches of 64)", tp["texts"], len(tp["bare_s"]), f"{bare:.1f}",
                  ", ".join(f"{x:.1f}" for x in tp["bare_s"]), f"{tp['texts'] / bare:.1f}"],
                 *([["the pipeline's batches encoded alone (embeddings.encode: longest first, token budget)",
                     tp["texts"], len(tp["batched_s"]), f"{min(tp['batched_s']):.1f}",
                     ", ".join(f"{x:.1f}" for x in tp["batched_s"]), f"{tp['texts'] / min(tp['batched_s']):.1f}"]]
                   if tp.get("batched_s") else []),
                 ["pipeline: embed task code path (claim, encode, insert, commit)", tp["texts"],
                  len(tp["pipeline_s"]), f"{pipe:.1f}", ", ".join(f"{x:.1f}" for x in tp["pipeline_s"]),
                  f"{tp['texts'] / pipe:.1f}"],
             ]},
            {"title": f"k-NN search, k={K}, {n:,} vectors, index {build.get('index', '?')}",
             "columns": ["step", "queries", "recall@10", "recall@10 with ties", "p50 ms", "p95 ms", "returned 10",
                         "load avg"],
             "rows": rows},
        ],
        "notes": [
            f"Throughput texts: AlpacaEval instructions and judge explanations, {tp['mean_chars']:.0f} characters "
            f"on average, embedded on the throughput benchmark's database; model load {data['load_s']:.1f} s (not "
            "counted).",
            *([f"Writing one vector into the {n:,}-vector table with its HNSW index (256 vectors near stored ones, one "
               f"transaction, rolled back): {data['write_ms']:.1f} ms per vector, the cost of the index's graph "
               "quality on every embed at this size (docs/recall.md)."] if "write_ms" in data else []),
            f"Data set version {DATASET_VERSION}: {n:,} vectors made from {sizes['base_texts']:,} real embeddings "
            f"(AlpacaEval instructions, explanations, answer paragraphs), each a step toward one of its "
            f"{KNN_NEIGHBOURS} real neighbours (up to {STEP_MAX}) plus noise with the real covariance (x{NOISE}); "
            f"{data['rare_rows']:,} rows with the rare user role; queries: {sizes['queries']} held-out real texts. "
            + (f"{'Built in this run' if data.get('built') else 'Built earlier'}: COPY {build.get('copy_s')} s, "
               f"HNSW index {build.get('index_s')} s ({build.get('index_mib')} MiB index, "
               f"{build.get('table_mib')} MiB table, load average {build.get('load_average', '?')})."
               if build else ""),
            f"Recall with ties: a hit also counts when its exact distance is within {TIE_EPSILON} of the 10th "
            "exact neighbour's (ann-benchmarks' k-NN recall); the verdict uses the strict recall@10.",
            "Latency is nearest_ids as the app calls it: a transaction, the iterative-scan settings, the HNSW "
            "search joined to the items with their filters, and the exact re-sort; one client, after a warm-up pass.",
        ],
        "data": {"throughput": tp, "searches": {k: {**v, "ms": [round(x, 2) for x in v["ms"]]}
                                                for k, v in data["searches"].items()},
                 "rare": {**rare, "ms": [round(x, 2) for x in rare["ms"]]}, "build": build,
                 **({"rare_strict": {**data["rare_strict"], "ms": [round(x, 2) for x in data["rare_strict"]["ms"]]}}
                    if "rare_strict" in data else {})},
    }


if __name__ == "__main__":
    if "--child" in sys.argv:
        common.setup_django(os.environ["DATABASE_URL"])
        child("--quick" in sys.argv, sys.argv[sys.argv.index("--out") + 1],
              part=sys.argv[sys.argv.index("--child") + 1])
    else:
        print("run it with: python -m bench.run --only recall [--quick]", file=sys.stderr)
        sys.exit(2)
