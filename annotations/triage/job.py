"""The clustering job: new embedded negative feedback items into clusters.

The job (:func:`triage_run`) works in batches of new feedback items (embedded by the active model, not yet
in a cluster), one transaction per batch, each taking a transaction-level advisory lock first. A batch:

1. moves every cluster's growth_24h to this run's 24-hour window (only clusters with members between the previous
   cut and this one are recounted);
2. finds each item's nearest open cluster exactly (one matrix product of the batch against the open clusters'
   running sums); items within ``TRIAGE_ASSIGN_DISTANCE`` (cosine distance) join it;
3. groups the rest with ``clustering.group`` (average linkage, ``TRIAGE_NEW_CLUSTER_DISTANCE``) into new clusters;
4. writes the member rows (which mark the items as clustered) in one INSERT from arrays, then every touched
   cluster's running sum, centroid, size, growth, environments, model versions, tags, severity and representatives
   in one UPDATE that aggregates the batch in SQL (the database derives the priority from them); titles only of
   clusters that are new or have doubled since their last title.

A worker killed mid-batch rolls the batch back; the rerun finds the same items in the same order (by id) and the same
clusters, so it converges to the same result. A second run that finds the lock taken returns at once.

Each cluster's priority is a generated column of ``Cluster`` (the formula is written once, there).
The job's statements live in ``job_sql``.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from django.db import connection, transaction
from django.utils import timezone

from annotations.models import Tag
from annotations.recall.selectors import active_model_name
from annotations.triage import clustering, summaries
from annotations.triage.conf import setting
from annotations.triage.job_sql import (
    PENDING_SQL,
    RECOUNT_GROWTH_SQL,
    REPRESENTATIVES,
    SHIFT_GROWTH_SQL,
    WRITE_CLUSTERS_SQL,
    add_members_sql,
    array_literal,
    fetch_binary,
    job_transaction_settings,
    try_lock,
    vector_literal_f32,
)
from annotations.triage.models import (
    DIMENSIONS,
    Cluster,
    ClusterMember,
    Cursor,
    Status,
)

logger = logging.getLogger(__name__)


TITLE_SAMPLE = 12


TITLE_CONTEXT_CLUSTERS = 60


def active_model() -> str:

    return active_model_name()


def severities() -> dict[int, int]:

    return dict(Tag.objects.values_list("pk", "severity"))


@dataclass
class Pending:
    item_ids: list[int]
    embedding_ids: list[int]
    vectors: np.ndarray


#: The job reads vectors from this far below its cursor again: an embedding whose id was taken before the cursor
#: moved but committed after it (two embedding workers) is still found. The hourly re-cluster scans everything.
CURSOR_MARGIN = 20_000


CURSOR_NAME = "embedding"


#: Cursor row holding the growth cut (microseconds since the epoch) the clusters' growth_24h counts are relative to.
GROWTH_CURSOR_NAME = "growth_cut"


EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


GROWTH_WINDOW = dt.timedelta(hours=24)


def _pending(limit: int, after: int = 0) -> Pending:
    """Up to ``limit`` clusterable items not yet in a cluster whose current vector's id is above ``after``."""
    rows = fetch_binary(PENDING_SQL, {"model": active_model(), "limit": limit, "after": after})
    vectors = np.stack([r[2] for r in rows]) if rows else np.zeros((0, DIMENSIONS), np.float32)
    return Pending(item_ids=[r[0] for r in rows], embedding_ids=[r[1] for r in rows], vectors=vectors)


def _nearest_open(vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(nearest open cluster id, cosine distance) per vector, exact; cluster id 0 when there is no open cluster.

    The open clusters' running sums are read in one query (binary, straight into numpy) and compared with the batch
    in numpy: one matrix product of the batch against every centroid (10k x 3,000 x 384 take a few hundred
    milliseconds of one core), exact and repeatable, which an approximate index search is not (see the note on
    Cluster's indexes). The same exact search inside PostgreSQL (no index) computes those 30 million distances one
    by one, far slower."""
    none = np.zeros(len(vectors), dtype=np.int64), np.full(len(vectors), np.inf)
    if not len(vectors):
        return none
    rows = fetch_binary("SELECT id, vector_sum FROM triage_cluster WHERE is_open AND size > 0 ORDER BY id", None)
    if not rows:
        return none
    ids = np.array([r[0] for r in rows], dtype=np.int64)
    best, dist = clustering.nearest(vectors, np.stack([r[1] for r in rows]))
    return ids[best], dist


@dataclass
class RunResult:
    items: int = 0
    assigned: int = 0
    new_clusters: int = 0
    batches: int = 0
    locked_out: bool = False
    growth_updated: int = 0
    retitled: int = 0


def zero_vector() -> list[float]:
    return [0.0] * DIMENSIONS


def _batch(batch_size: int, now: dt.datetime, result: RunResult, *, full_scan: bool = False) -> bool:
    """One batch in one transaction. False when there is nothing more to do (the batch was not full) or the lock
    was taken."""
    with transaction.atomic():
        if not try_lock():
            result.locked_out = True
            return False
        job_transaction_settings()
        cursor_row, _ = Cursor.objects.select_for_update().get_or_create(name=CURSOR_NAME)
        after = 0 if full_scan else max(0, cursor_row.value - CURSOR_MARGIN)
        pending = _pending(batch_size, after)
        if not pending.item_ids:
            return False
        cursor_row.value = max(cursor_row.value, max(pending.embedding_ids))
        cursor_row.save(update_fields=["value"])
        # Growth first moves to this run's window, so the batch's fresh members add to counts of the same window.
        result.growth_updated += _age_growth(now)
        assign_max = float(setting("TRIAGE_ASSIGN_DISTANCE"))
        cluster_ids, distances = _nearest_open(pending.vectors)
        rest = np.flatnonzero(~(distances <= assign_max))
        distances = distances.astype(np.float64)
        new_ids: set[int] = set()
        if len(rest):
            labels = clustering.group(pending.vectors[rest], threshold=float(setting("TRIAGE_NEW_CLUSTER_DISTANCE")),
                                      assign=assign_max)
            sums, _counts = clustering.centroids(pending.vectors[rest], labels)
            centres = clustering.normalise(sums)
            created = np.asarray(_create_clusters(centres, now), dtype=np.int64)
            cluster_ids[rest] = created[labels]
            distances[rest] = 1.0 - np.einsum("ij,ij->i", pending.vectors[rest], centres[labels])
            new_ids = {int(i) for i in created}
            result.new_clusters += len(created)
        touched = _add_members(cluster_ids.tolist(), pending, distances.tolist(), now)
        result.retitled += _retitle_changed(touched, new_ids)
        result.items += len(pending.item_ids)
        result.assigned += len(pending.item_ids) - len(rest)
        result.batches += 1
        # A short batch was the last one: what arrives meanwhile waits for the next run, not another scan now.
        return len(pending.item_ids) == batch_size


def _create_clusters(centres: np.ndarray, now: dt.datetime) -> list[int]:
    """New empty clusters around ``centres`` (ids reserved first, rows written with COPY); their ids, in order."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT nextval(pg_get_serial_sequence('triage_cluster', 'id')) FROM generate_series(1, %s)",
                       [len(centres)])
        ids = [r[0] for r in cursor.fetchall()]
    zero = vector_literal_f32(np.zeros(DIMENSIONS, dtype=np.float32))
    columns = ["id", "title", "terms", "status", "resolution", "is_open", "centroid", "vector_sum", "size",
               "negative_count", "growth_24h", "max_severity", "environments", "model_versions", "tag_ids",
               "representative_ids", "representative_distances", "titled_size", "guidance", "samples",
               "created_at", "updated_at"]
    with connection.connection.cursor() as cursor, cursor.copy(
        f"COPY triage_cluster ({', '.join(columns)}) FROM STDIN"
    ) as copy:
        for pk, centre in zip(ids, centres, strict=True):
            copy.write_row((pk, "Untitled cluster", "{}", Status.NEW, "", True, vector_literal_f32(centre), zero, 0, 0,
                            0, 0, "{}", "{}", "{}", "{}", "{}", 0, "", "{}", now, now))
    return ids


def _add_members(cluster_ids: list[int], pending: Pending, distances: list[float],
                 now: dt.datetime) -> list[tuple[int, int, int]]:
    """Write the batch's member rows and add them to their clusters' numbers (ADD_MEMBERS_SQL, one statement);
    (id, size, titled_size) of each touched cluster."""
    with connection.cursor() as cursor:
        cursor.execute(add_members_sql(), {
            "clusters": array_literal(cluster_ids), "items": array_literal(pending.item_ids),
            "embeddings": array_literal(pending.embedding_ids), "distances": array_literal(distances),
            "via": ClusterMember.Via.JOB, "now": now, "cut": growth_cut(now),
        })
        return cursor.fetchall()


def _retitle_changed(touched: list[tuple[int, int, int]], new_ids: set[int]) -> int:
    """Titles of the touched clusters that are new or have doubled in size since their title was computed (the rule
    that keeps a run from recomputing thousands of titles whose members barely changed)."""
    stale = [Cluster(pk=pk, size=size) for pk, size, titled in sorted(touched)
             if pk in new_ids or size >= 2 * max(titled, 1)]
    if not stale:
        return 0
    _retitle(stale)

    payload = [{"id": c.pk, "title": c.title, "terms": list(c.terms), "samples": list(c.samples),
                "titled_size": c.titled_size} for c in stale]
    with connection.cursor() as cursor:
        cursor.execute(
            """UPDATE triage_cluster c SET title = v.title, terms = v.terms, samples = v.samples,
                      titled_size = v.titled_size
               FROM jsonb_to_recordset(%s::jsonb)
                    AS v(id bigint, title text, terms text[], samples text[], titled_size integer)
               WHERE c.id = v.id""",
            [json.dumps(payload)],
        )
    return len(stale)


def write_clusters(clusters: list[Cluster], now: dt.datetime) -> None:
    """Write the numbers of ``clusters`` held in Python in one statement (the re-cluster's refresh; Django's
    bulk_update builds a CASE per field and row, which costs seconds for thousands of clusters)."""

    if not clusters:
        return
    payload = [{
        "id": c.pk, "size": c.size,
        "negative_count": c.negative_count,
        "growth_24h": c.growth_24h, "environments": list(c.environments), "model_versions": list(c.model_versions),
        "tag_ids": list(c.tag_ids), "max_severity": c.max_severity,
        "last_item_at": c.last_item_at.isoformat() if c.last_item_at else None,
        "representative_ids": list(c.representative_ids),
        "representative_distances": list(c.representative_distances), "title": c.title, "terms": list(c.terms),
        "samples": list(c.samples), "titled_size": c.titled_size,
    } for c in clusters]
    with connection.cursor() as cursor:
        cursor.execute(WRITE_CLUSTERS_SQL, [now, json.dumps(payload)])


def _representatives(cluster_ids: Iterable[int]) -> dict[int, list[tuple[int, float]]]:
    """(item id, distance) of the members nearest each cluster's centroid (by the distance stored when they
    joined), nearest first."""
    ids = list(cluster_ids)
    if not ids:
        return {}
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT c.id, r.item_id, r.distance FROM unnest(%s::bigint[]) AS c(id)
            CROSS JOIN LATERAL (SELECT m.item_id, m.distance FROM triage_clustermember m WHERE m.cluster_id = c.id
                                ORDER BY m.distance, m.item_id LIMIT %s) r
            """,
            [ids, REPRESENTATIVES],
        )
        out: dict[int, list[tuple[int, float]]] = {i: [] for i in ids}
        for cluster_id, item_id, distance in cursor.fetchall():
            out[cluster_id].append((item_id, distance))
    return out


def _sample_texts(cluster_ids: Sequence[int], per_cluster: int) -> dict[int, list[str]]:
    if not cluster_ids:
        return {}
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT c.id, s.text FROM unnest(%s::bigint[]) AS c(id)
            CROSS JOIN LATERAL (SELECT i.text FROM triage_clustermember m JOIN recall_feedbackitem i ON i.id = m.item_id
                                WHERE m.cluster_id = c.id ORDER BY m.distance, m.item_id LIMIT %s) s
            """,
            [list(cluster_ids), per_cluster],
        )
        out: dict[int, list[str]] = {i: [] for i in cluster_ids}
        for cluster_id, text in cursor.fetchall():
            out[cluster_id].append(text)
    return out


def _retitle(clusters: list[Cluster]) -> None:
    """Titles of ``clusters``: a representative sentence and snippets from the members nearest the centroid
    (``summaries``), and c-TF-IDF keywords (``terms``) weighed against the top open clusters as context."""
    if not clusters:
        return
    ids = [c.pk for c in clusters]
    context = list(
        Cluster.objects.filter(is_open=True).exclude(pk__in=ids).order_by("-priority", "-id")
        .values_list("pk", flat=True)[:TITLE_CONTEXT_CLUSTERS]
    )
    texts = _sample_texts(ids + context, TITLE_SAMPLE)
    terms = clustering.titles([[summaries.plain(t) for t in texts[i]] for i in ids + context])
    for c, chosen in zip(clusters, terms, strict=False):
        c.terms = chosen
        c.title = (summaries.title(texts[c.pk]) or clustering.title_text(chosen))[:200]
        c.samples = summaries.snippets(texts[c.pk], title=c.title)
        c.titled_size = c.size


def refresh_derived(clusters: list[Cluster], *, new_ids: set[int] = frozenset(), force_title: bool = False) -> None:
    """Representatives and titles (when new or doubled in size since the last title)."""
    reps = _representatives(c.pk for c in clusters)
    for c in clusters:
        c.representative_ids = [item_id for item_id, _ in reps.get(c.pk, [])]
        c.representative_distances = [distance for _, distance in reps.get(c.pk, [])]
    _retitle([c for c in clusters if force_title or c.pk in new_ids or c.size >= 2 * max(c.titled_size, 1)])


def growth_cut(now: dt.datetime) -> dt.datetime:
    """Members whose feedback is later than this count as growth (the last 24 hours)."""
    return now - GROWTH_WINDOW


def _micros(at: dt.datetime) -> int:
    return (at - EPOCH) // dt.timedelta(microseconds=1)


def _age_growth(now: dt.datetime, *, full: bool = False) -> int:
    """Move growth_24h to the window ending at ``now``; call under the job's lock. Returns clusters changed.

    Every cluster's growth_24h counts its members whose feedback is later than the cut, a Cursor row (locked until
    the transaction ends, so a merge's recount, which reads it too, waits). Moving the cut takes off the members
    between the previous cut and this one, found by an index range on ``item_at`` (a minute's worth of members per
    run), so a run costs what aged out, not a recount of every cluster with recent members. ``full`` (the hourly
    re-cluster) and the first run recount everything."""
    cut = growth_cut(now)
    row, created = Cursor.objects.select_for_update().get_or_create(name=GROWTH_CURSOR_NAME,
                                                                   defaults={"value": _micros(cut)})
    previous = EPOCH + dt.timedelta(microseconds=row.value)
    params: dict[str, Any] = {"cut": cut, "now": now}
    if created or full:
        sql = RECOUNT_GROWTH_SQL
    elif previous == cut:
        return 0
    else:
        params.update(low=min(previous, cut), high=max(previous, cut), sign=-1 if cut > previous else 1)
        sql = SHIFT_GROWTH_SQL
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        changed = cursor.rowcount
    if row.value != _micros(cut):
        row.value = _micros(cut)
        row.save(update_fields=["value"])
    return changed


def growth_cut_for_update(now: dt.datetime | None = None) -> dt.datetime:
    """The cut the stored growth counts use (now - 24 h before the job's first run), with the Cursor row locked so
    the job does not move it before the caller's transaction ends. For recounts outside the job."""
    row = Cursor.objects.select_for_update().filter(name=GROWTH_CURSOR_NAME).first()
    if row is None:
        return growth_cut(now or timezone.now())
    return EPOCH + dt.timedelta(microseconds=row.value)


def _refresh_growth(now: dt.datetime, *, full: bool = False) -> int:
    """``_age_growth`` in a transaction of its own, when no batch ran (the window still moves every minute)."""
    with transaction.atomic():
        if not try_lock():
            return 0
        job_transaction_settings()
        return _age_growth(now, full=full)


def triage_run(*, max_batches: int | None = None, now: dt.datetime | None = None, full_scan: bool = False,
               batch_size: int | None = None) -> RunResult:
    """Cluster every new embedded negative feedback item (see the module docstring). Idempotent.

    Normally only vectors above the job's cursor (less a margin) are read; ``full_scan`` looks at every vector and
    recounts every cluster's growth (the hourly re-cluster does, as a safety net)."""
    now = now or timezone.now()
    result = RunResult()
    batch_size = batch_size or int(setting("TRIAGE_BATCH_SIZE"))
    pause = float(setting("TRIAGE_BATCH_PAUSE_SECONDS"))
    while max_batches is None or result.batches < max_batches:
        if not _batch(batch_size, now, result, full_scan=full_scan):
            break
        logger.info("triage batch %s committed: %s items so far", result.batches, result.items)
        if pause:
            time.sleep(pause)  # a deliberately slow run (TRIAGE_BATCH_PAUSE_SECONDS), for demonstrations and tests
    if not result.locked_out:
        result.growth_updated += _refresh_growth(now, full=full_scan)
    return result


def member_vectors(cluster_id: int, limit: int = 3000) -> tuple[list[int], np.ndarray]:
    rows = fetch_binary(
        """SELECT m.item_id, e.vector FROM triage_clustermember m
           JOIN recall_feedbackitem i ON i.id = m.item_id
           JOIN recall_embedding e ON e.item_id = i.id AND e.model = %s AND e.text_hash = i.text_hash
           WHERE m.cluster_id = %s ORDER BY m.item_id LIMIT %s""",
        [active_model(), cluster_id, limit],
    )
    if not rows:
        return [], np.zeros((0, DIMENSIONS), np.float32)
    return [r[0] for r in rows], np.stack([r[1] for r in rows])
