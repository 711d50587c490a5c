"""Writes of the triage app: the clustering job, the re-cluster proposals, and what moderators and experts do.

The clustering job (:func:`triage_run`) works in batches of new feedback items (embedded by the active model, not yet
in a cluster), one transaction per batch, each taking a transaction-level advisory lock first. A batch:

1. finds each item's nearest open cluster with pgvector (HNSW over the centroids of open clusters); items within
   ``TRIAGE_ASSIGN_DISTANCE`` (cosine distance) join it;
2. groups the rest with ``clustering.group`` (average linkage, ``TRIAGE_NEW_CLUSTER_DISTANCE``) into new clusters;
3. writes the member rows (which mark the items as clustered) and updates the touched clusters' running sums,
   centroids, numbers, representatives, titles and priorities.

A worker killed mid-batch rolls the batch back; the rerun finds the same items in the same order (by id) and the same
clusters, so it converges to the same result. A second run that finds the lock taken returns at once.

Priority (higher first)::

    priority = 10·ln(1 + size) + 15·ln(1 + growth_24h) + 5·max_severity + 10·negative_share

size: members; growth_24h: members whose feedback is from the last 24 hours; max_severity: highest
``annotations.Tag.severity`` (1 low .. 4 critical, 0 untagged) among the members' tags; negative_share: the share
of members that are negative signals. Ten new reports in a day outrank a hundred old ones; severity breaks ties
between clusters of similar size.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from django.conf import settings
from django.contrib.auth.models import Group
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from annotations.triage import clustering
from annotations.triage.models import (
    DIMENSIONS,
    Cluster,
    ClusterEvent,
    ClusterMember,
    ClusterProposal,
    ClusterTagging,
    Cursor,
    ProposalKind,
    ProposalStatus,
    Resolution,
    Status,
)
from feedbackhub import roles

logger = logging.getLogger(__name__)

#: Key of the PostgreSQL advisory lock every clustering step takes ("triage" in ASCII).
LOCK_KEY = 0x747269616765
DEFAULTS: dict[str, Any] = {
    "TRIAGE_ASSIGN_DISTANCE": 0.35,
    "TRIAGE_NEW_CLUSTER_DISTANCE": 0.45,
    "TRIAGE_MERGE_DISTANCE": 0.25,
    "TRIAGE_SPLIT_DISTANCE": 0.45,
    "TRIAGE_BATCH_SIZE": 10000,
    "TRIAGE_CLAIM_MINUTES": 30,
    "TRIAGE_SLA_HOURS": 48,
    "TRIAGE_BATCH_PAUSE_SECONDS": 0.0,
}
REPRESENTATIVES = 3
TITLE_SAMPLE = 12
TITLE_CONTEXT_CLUSTERS = 60


def setting(name: str) -> Any:
    return getattr(settings, name, DEFAULTS[name])


def priority_of(*, size: int, growth_24h: int, max_severity: int, negative_count: int) -> float:
    """The queue's sort key; see the module docstring."""
    share = negative_count / size if size else 0.0
    return round(10 * math.log1p(size) + 15 * math.log1p(growth_24h) + 5 * max_severity + 10 * share, 4)


def _vector_literal(vector: np.ndarray) -> str:
    return "[" + ",".join(map(repr, np.asarray(vector, dtype=np.float32).tolist())) + "]"


_vector_oids: dict[str, int] = {}


def _fetch(sql: str, params: Any) -> list[tuple]:
    """Run ``sql`` on Django's connection (same transaction) with binary results, ``vector`` columns loaded straight
    into float32 numpy arrays (parsing their text form costs far more than the query)."""
    import psycopg  # noqa: PLC0415
    from pgvector.psycopg.vector import VectorBinaryLoader  # noqa: PLC0415

    connection.ensure_connection()
    # Django's cursors bind parameters client-side, which rules out binary results: a plain server-binding cursor.
    with psycopg.Cursor(connection.connection) as cursor:
        oid = _vector_oids.get(connection.alias)
        if oid is None:
            cursor.execute("SELECT 'vector'::regtype::oid")
            oid = _vector_oids[connection.alias] = int(cursor.fetchone()[0])
        cursor.adapters.register_loader(oid, VectorBinaryLoader)
        cursor.execute(sql, params, binary=True)
        return cursor.fetchall()


def _try_lock() -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_xact_lock(%s)", [LOCK_KEY])
        return bool(cursor.fetchone()[0])


def _active_model() -> str:
    from annotations.recall.selectors import active_model_name  # noqa: PLC0415

    return active_model_name()


def _severities() -> dict[int, int]:
    from annotations.models import Tag  # noqa: PLC0415

    return dict(Tag.objects.values_list("pk", "severity"))


# --- the clustering job -------------------------------------------------------------------------------------------


@dataclass
class Pending:
    item_ids: list[int]
    embedding_ids: list[int]
    vectors: np.ndarray
    item_at: list[dt.datetime]
    environment: list[str]
    model_version: list[str]
    tag_ids: list[list[int]]
    is_negative: list[bool]


PENDING_SQL = """
SELECT i.id, e.id, e.vector, COALESCE(i.occurred_at, i.created_at), i.environment, i.model_version,
       i.tag_ids, i.is_negative
FROM recall_feedbackitem i
JOIN recall_embedding e ON e.item_id = i.id AND e.model = %(model)s AND e.text_hash = i.text_hash
WHERE e.id > %(after)s AND i.is_active AND i.is_negative
  AND NOT EXISTS (SELECT 1 FROM triage_clustermember m WHERE m.item_id = i.id)
  AND (i.annotation_id IS NULL
       OR NOT EXISTS (SELECT 1 FROM triage_clustertagging t WHERE t.annotation_id = i.annotation_id))
ORDER BY e.id
LIMIT %(limit)s
"""
#: The job reads vectors from this far below its cursor again: an embedding whose id was taken before the cursor
#: moved but committed after it (two embedding workers) is still found. The hourly re-cluster scans everything.
CURSOR_MARGIN = 20_000
CURSOR_NAME = "embedding"


def _pending(limit: int, after: int = 0) -> Pending:
    """Up to ``limit`` clusterable items not yet in a cluster whose current vector's id is above ``after``."""
    rows = _fetch(PENDING_SQL, {"model": _active_model(), "limit": limit, "after": after})
    vectors = np.stack([r[2] for r in rows]) if rows else np.zeros((0, DIMENSIONS), np.float32)
    return Pending(
        item_ids=[r[0] for r in rows], embedding_ids=[r[1] for r in rows], vectors=vectors,
        item_at=[r[3] for r in rows], environment=[r[4] for r in rows], model_version=[r[5] for r in rows],
        tag_ids=[list(r[6] or []) for r in rows], is_negative=[bool(r[7]) for r in rows],
    )


def _nearest_open(embedding_ids: Sequence[int], vectors: np.ndarray,
                  sums_out: dict[int, np.ndarray] | None = None) -> dict[int, tuple[int, float]]:
    """embedding id -> (nearest open cluster id, cosine distance), exact; ``sums_out`` receives the clusters'
    running sums (id -> vector).

    The open clusters' running sums are read in one query (binary) and compared with the batch in numpy: 10k
    vectors against a few thousand centroids take milliseconds, and the answer is exact and repeatable, which an
    approximate index search is not (see the note on Cluster's indexes)."""
    if not embedding_ids:
        return {}
    rows = _fetch("SELECT id, vector_sum FROM triage_cluster WHERE is_open AND size > 0 ORDER BY id", None)
    if not rows:
        return {}
    ids = np.array([r[0] for r in rows], dtype=np.int64)
    if sums_out is not None:
        sums_out.update((r[0], r[1]) for r in rows)
    best, dist = clustering.nearest(vectors, np.stack([r[1] for r in rows]))
    return {e: (int(ids[b]), float(d)) for e, b, d in zip(embedding_ids, best, dist, strict=True)}


@dataclass
class RunResult:
    items: int = 0
    assigned: int = 0
    new_clusters: int = 0
    batches: int = 0
    locked_out: bool = False
    growth_updated: int = 0


def _zero() -> list[float]:
    return [0.0] * DIMENSIONS


def _apply_members(
    clusters: dict[int, Cluster], members: list[tuple[int, int, int]], pending: Pending, severities: dict[int, int],
    now: dt.datetime,
) -> None:
    """Add (cluster id, pending index, ...) members to the clusters' running numbers (in memory; the vector sums
    grow in SQL, see ADD_SUMS_SQL)."""
    day_ago = now - dt.timedelta(hours=24)
    for cluster_id, index, _ in members:
        c = clusters[cluster_id]
        c.size += 1
        c.negative_count += int(pending.is_negative[index])
        if pending.item_at[index] and pending.item_at[index] > day_ago:
            c.growth_24h += 1
        env, version = pending.environment[index], pending.model_version[index]
        if env and env not in c.environments:
            c.environments = sorted([*c.environments, env])
        if version and version not in c.model_versions:
            c.model_versions = sorted([*c.model_versions, version])
        for tag_id in pending.tag_ids[index]:
            if tag_id not in c.tag_ids:
                c.tag_ids = sorted([*c.tag_ids, tag_id])
            c.max_severity = max(c.max_severity, severities.get(tag_id, 0))
        item_at = pending.item_at[index]
        if item_at and (c.last_item_at is None or item_at > c.last_item_at):
            c.last_item_at = item_at


def _batch(batch_size: int, now: dt.datetime, result: RunResult, *, full_scan: bool = False) -> bool:
    """One batch in one transaction. False when there was nothing to do or the lock was taken."""
    with transaction.atomic():
        if not _try_lock():
            result.locked_out = True
            return False
        cursor_row, _ = Cursor.objects.select_for_update().get_or_create(name=CURSOR_NAME)
        after = 0 if full_scan else max(0, cursor_row.value - CURSOR_MARGIN)
        pending = _pending(batch_size, after)
        if not pending.item_ids:
            return False
        cursor_row.value = max(cursor_row.value, max(pending.embedding_ids))
        cursor_row.save(update_fields=["value"])
        assign_max = float(setting("TRIAGE_ASSIGN_DISTANCE"))
        nearest = _nearest_open(pending.embedding_ids, pending.vectors)
        members: list[tuple[int, int, int]] = []  # (cluster id, index into pending, -)
        distances: dict[int, float] = {}
        rest: list[int] = []
        for index, embedding_id in enumerate(pending.embedding_ids):
            hit = nearest.get(embedding_id)
            if hit is not None and hit[1] <= assign_max:
                members.append((hit[0], index, 0))
                distances[index] = hit[1]
            else:
                rest.append(index)
        touched_ids = {m[0] for m in members}
        clusters = {c.pk: c for c in Cluster.objects.select_for_update().defer("centroid", "vector_sum")
                    .filter(pk__in=touched_ids)}
        new_ids: set[int] = set()
        if rest:
            labels = clustering.group(pending.vectors[rest], threshold=float(setting("TRIAGE_NEW_CLUSTER_DISTANCE")),
                                      assign=assign_max)
            sums, _counts = clustering.centroids(pending.vectors[rest], labels)
            created = _create_clusters(clustering.normalise(sums), now)
            for c in created:
                c.vector_sum = np.zeros(DIMENSIONS, dtype=np.float32)
                clusters[c.pk] = c
                new_ids.add(c.pk)
            for position, label in zip(rest, labels.tolist(), strict=True):
                cluster = created[label]
                members.append((cluster.pk, position, 0))
                distances[position] = float(1.0 - pending.vectors[position] @ np.asarray(cluster.centroid))
            result.new_clusters += len(created)
        _insert_members([(cid, pending.item_ids[i], distances[i], pending.item_at[i] or now)
                         for cid, i, _ in members], now)
        _apply_members(clusters, members, pending, _severities(), now)
        # The sums grow in the database from the vectors already there: nothing 384 numbers wide goes over the wire.
        with connection.cursor() as cursor:
            cursor.execute(ADD_SUMS_SQL, [pending.embedding_ids, pending.item_ids])
        _refresh_derived(list(clusters.values()), new_ids=new_ids)
        _write_clusters(list(clusters.values()), now)
        result.items += len(pending.item_ids)
        result.assigned += len(pending.item_ids) - len(rest)
        result.batches += 1
        return True


def _create_clusters(centres: np.ndarray, now: dt.datetime) -> list[Cluster]:
    """New empty clusters around ``centres`` (ids reserved first, rows written with COPY), in order."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT nextval(pg_get_serial_sequence('triage_cluster', 'id')) FROM generate_series(1, %s)",
                       [len(centres)])
        ids = [r[0] for r in cursor.fetchall()]
    zero = _vector_literal(np.zeros(DIMENSIONS, dtype=np.float32))
    clusters = [Cluster(pk=pk, centroid=c, vector_sum=np.zeros(DIMENSIONS, dtype=np.float32), status=Status.NEW,
                        created_at=now, updated_at=now) for pk, c in zip(ids, centres, strict=True)]
    columns = ["id", "title", "terms", "status", "resolution", "is_open", "centroid", "vector_sum", "size",
               "negative_count", "growth_24h", "max_severity", "environments", "model_versions", "tag_ids",
               "representative_ids", "priority", "titled_size", "guidance", "created_at", "updated_at"]
    with connection.connection.cursor() as cursor, cursor.copy(
        f"COPY triage_cluster ({', '.join(columns)}) FROM STDIN"
    ) as copy:
        for c in clusters:
            copy.write_row((c.pk, c.title, "{}", Status.NEW, "", True, _vector_literal(c.centroid), zero, 0, 0, 0, 0,
                            "{}", "{}", "{}", "{}", 0.0, 0, "", now, now))
    return clusters


def _insert_members(rows: list[tuple[int, int, float, dt.datetime]], now: dt.datetime) -> None:
    """(cluster id, item id, distance, item_at) rows, with COPY (thousands of rows per batch)."""
    connection.ensure_connection()
    with connection.connection.cursor() as cursor, cursor.copy(
        "COPY triage_clustermember (cluster_id, item_id, distance, item_at, via, added_at) FROM STDIN"
    ) as copy:
        for cluster_id, item_id, distance, item_at in rows:
            copy.write_row((cluster_id, item_id, distance, item_at, ClusterMember.Via.JOB, now))


ADD_SUMS_SQL = """
UPDATE triage_cluster c SET vector_sum = c.vector_sum + d.s, centroid = l2_normalize(c.vector_sum + d.s)
FROM (SELECT m.cluster_id, sum(e.vector) AS s
      FROM triage_clustermember m JOIN recall_embedding e ON e.id = ANY(%s) AND e.item_id = m.item_id
      WHERE m.item_id = ANY(%s) GROUP BY m.cluster_id) d
WHERE c.id = d.cluster_id
"""

WRITE_CLUSTERS_SQL = """
UPDATE triage_cluster c SET
    size = v.size,
    negative_count = v.negative_count, growth_24h = v.growth_24h, environments = v.environments,
    model_versions = v.model_versions, tag_ids = v.tag_ids, max_severity = v.max_severity,
    last_item_at = v.last_item_at, representative_ids = v.representative_ids, title = v.title, terms = v.terms,
    titled_size = v.titled_size, priority = v.priority, updated_at = %s
FROM jsonb_to_recordset(%s::jsonb) AS v(
    id bigint, size integer, negative_count integer, growth_24h integer,
    environments text[], model_versions text[], tag_ids bigint[], max_severity smallint, last_item_at timestamptz,
    representative_ids bigint[], title text, terms text[], titled_size integer, priority double precision)
WHERE c.id = v.id
"""


def _write_clusters(clusters: list[Cluster], now: dt.datetime) -> None:
    """Write the job's numbers of ``clusters`` in one statement (Django's bulk_update builds a CASE per field and
    row, which costs seconds for thousands of clusters). Vector sums are added in SQL (``ADD_SUMS_SQL``)."""
    import json  # noqa: PLC0415

    if not clusters:
        return
    payload = [{
        "id": c.pk, "size": c.size,
        "negative_count": c.negative_count,
        "growth_24h": c.growth_24h, "environments": list(c.environments), "model_versions": list(c.model_versions),
        "tag_ids": list(c.tag_ids), "max_severity": c.max_severity,
        "last_item_at": c.last_item_at.isoformat() if c.last_item_at else None,
        "representative_ids": list(c.representative_ids), "title": c.title, "terms": list(c.terms),
        "titled_size": c.titled_size, "priority": c.priority,
    } for c in clusters]
    with connection.cursor() as cursor:
        cursor.execute(WRITE_CLUSTERS_SQL, [now, json.dumps(payload)])


def _representatives(cluster_ids: Iterable[int]) -> dict[int, list[int]]:
    """The members nearest each cluster's centroid (by the distance stored when they joined)."""
    ids = list(cluster_ids)
    if not ids:
        return {}
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT c.id, r.item_id FROM unnest(%s::bigint[]) AS c(id)
            CROSS JOIN LATERAL (SELECT m.item_id FROM triage_clustermember m WHERE m.cluster_id = c.id
                                ORDER BY m.distance, m.item_id LIMIT %s) r
            """,
            [ids, REPRESENTATIVES],
        )
        out: dict[int, list[int]] = {i: [] for i in ids}
        for cluster_id, item_id in cursor.fetchall():
            out[cluster_id].append(item_id)
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
    """c-TF-IDF titles for ``clusters``, weighed against the top open clusters as context."""
    if not clusters:
        return
    ids = [c.pk for c in clusters]
    context = list(
        Cluster.objects.filter(is_open=True).exclude(pk__in=ids).order_by("-priority", "-id")
        .values_list("pk", flat=True)[:TITLE_CONTEXT_CLUSTERS]
    )
    texts = _sample_texts(ids + context, TITLE_SAMPLE)
    terms = clustering.titles([texts[i] for i in ids + context])
    for c, chosen in zip(clusters, terms, strict=False):
        c.terms = chosen
        c.title = clustering.title_text(chosen)[:200]
        c.titled_size = c.size


def _refresh_derived(clusters: list[Cluster], *, new_ids: set[int] = frozenset(), force_title: bool = False) -> None:
    """Representatives, titles (when new or doubled in size since the last title) and priority."""
    reps = _representatives(c.pk for c in clusters)
    for c in clusters:
        c.representative_ids = reps.get(c.pk, [])
        c.priority = priority_of(size=c.size, growth_24h=c.growth_24h, max_severity=c.max_severity,
                                 negative_count=c.negative_count)
    _retitle([c for c in clusters if force_title or c.pk in new_ids or c.size >= 2 * max(c.titled_size, 1)])


def _refresh_growth(now: dt.datetime) -> int:
    """Recount growth_24h where it may have changed (members age out of the window); one transaction."""
    with transaction.atomic():
        if not _try_lock():
            return 0
        day_ago = now - dt.timedelta(hours=24)
        candidates = list(Cluster.objects.filter(Q(growth_24h__gt=0) | Q(last_item_at__gt=day_ago))
                          .values_list("pk", "growth_24h", "size", "max_severity", "negative_count"))
        if not candidates:
            return 0
        with connection.cursor() as cursor:
            cursor.execute(
                """SELECT m.cluster_id, count(*) FROM triage_clustermember m
                   WHERE m.cluster_id = ANY(%s) AND m.item_at > %s GROUP BY m.cluster_id""",
                [[c[0] for c in candidates], day_ago],
            )
            counts = dict(cursor.fetchall())
        changed = []
        for pk, growth, size, severity, negative in candidates:
            fresh = counts.get(pk, 0)
            if fresh != growth:
                changed.append((pk, fresh, priority_of(size=size, growth_24h=fresh, max_severity=severity,
                                                       negative_count=negative)))
        if changed:
            with connection.cursor() as cursor:
                cursor.execute(
                    """UPDATE triage_cluster c SET growth_24h = v.g, priority = v.p, updated_at = %s
                       FROM unnest(%s::bigint[], %s::integer[], %s::double precision[]) AS v(id, g, p)
                       WHERE c.id = v.id""",
                    [now, [c[0] for c in changed], [c[1] for c in changed], [c[2] for c in changed]],
                )
        return len(changed)


def triage_run(*, max_batches: int | None = None, now: dt.datetime | None = None, full_scan: bool = False,
               batch_size: int | None = None) -> RunResult:
    """Cluster every new embedded negative feedback item (see the module docstring). Idempotent.

    Normally only vectors above the job's cursor (less a margin) are read; ``full_scan`` looks at every vector
    (the hourly re-cluster does, as a safety net)."""
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
        result.growth_updated = _refresh_growth(now)
    return result


# --- the periodic re-cluster: proposals, never reshuffling ---------------------------------------------------------


@dataclass
class ReclusterResult:
    merges: int = 0
    splits: int = 0
    stale: int = 0
    locked_out: bool = False
    retitled: list[int] = field(default_factory=list)


MERGE_SQL = """
SELECT c.id, nn.id, nn.dist
FROM triage_cluster c
CROSS JOIN LATERAL (
    SELECT o.id, (o.centroid <=> c.centroid) AS dist FROM triage_cluster o
    WHERE o.is_open AND o.id <> c.id ORDER BY o.centroid <=> c.centroid LIMIT 1
) nn
WHERE c.is_open AND nn.dist <= %s
"""


def _member_vectors(cluster_id: int, limit: int = 3000) -> tuple[list[int], np.ndarray]:
    rows = _fetch(
        """SELECT m.item_id, e.vector FROM triage_clustermember m
           JOIN recall_feedbackitem i ON i.id = m.item_id
           JOIN recall_embedding e ON e.item_id = i.id AND e.model = %s AND e.text_hash = i.text_hash
           WHERE m.cluster_id = %s ORDER BY m.item_id LIMIT %s""",
        [_active_model(), cluster_id, limit],
    )
    if not rows:
        return [], np.zeros((0, DIMENSIONS), np.float32)
    return [r[0] for r in rows], np.stack([r[1] for r in rows])


def triage_recluster(*, split_min_size: int = 8, max_split_checks: int = 50) -> ReclusterResult:
    """Propose merges (open clusters whose centroids are within TRIAGE_MERGE_DISTANCE) and splits (a cluster whose
    two main parts are further apart than TRIAGE_SPLIT_DISTANCE); refresh titles. Changes no membership."""
    result = ReclusterResult()
    with transaction.atomic():
        if not _try_lock():
            result.locked_out = True
            return result
        result.stale = ClusterProposal.objects.filter(status=ProposalStatus.PENDING).filter(
            Q(cluster__is_open=False) | Q(other__is_open=False)).update(status=ProposalStatus.STALE)
        decided = set(ClusterProposal.objects.filter(kind=ProposalKind.MERGE, status=ProposalStatus.REJECTED)
                      .values_list("cluster_id", "other_id"))
        pending = set(ClusterProposal.objects.filter(kind=ProposalKind.MERGE, status=ProposalStatus.PENDING)
                      .values_list("cluster_id", "other_id"))
        sizes = dict(Cluster.objects.filter(is_open=True).values_list("pk", "size"))
        with connection.cursor() as cursor:
            cursor.execute(MERGE_SQL, [float(setting("TRIAGE_MERGE_DISTANCE"))])
            pairs = cursor.fetchall()
        for a, b, dist in sorted(pairs, key=lambda p: (p[2], p[0])):
            # The smaller cluster goes into the larger one (ties: the newer into the older).
            small, large = sorted((a, b), key=lambda x: (sizes.get(x, 0), -x))
            if (small, large) in decided or (small, large) in pending or (large, small) in pending:
                continue
            ClusterProposal.objects.create(kind=ProposalKind.MERGE, cluster_id=small, other_id=large, score=dist)
            pending.add((small, large))
            result.merges += 1
        split_threshold = float(setting("TRIAGE_SPLIT_DISTANCE"))
        candidates = (Cluster.objects.filter(is_open=True, size__gte=split_min_size)
                      .exclude(proposals__kind=ProposalKind.SPLIT, proposals__status=ProposalStatus.PENDING)
                      .order_by("-size", "id").values_list("pk", flat=True)[:max_split_checks])
        for cluster_id in candidates:
            item_ids, vectors = _member_vectors(cluster_id)
            proposal = _split_proposal(item_ids, vectors, split_threshold, split_min_size // 2)
            if proposal is not None:
                part, distance = proposal
                ClusterProposal.objects.create(kind=ProposalKind.SPLIT, cluster_id=cluster_id, item_ids=part,
                                               score=distance)
                result.splits += 1
        clusters = list(Cluster.objects.select_for_update().filter(is_open=True).order_by("-priority", "-id")[:200])
        _refresh_derived(clusters, force_title=True)
        _write_clusters(clusters, timezone.now())
        result.retitled = [c.pk for c in clusters]
    return result


def _split_proposal(item_ids: list[int], vectors: np.ndarray, threshold: float,
                    min_part: int) -> tuple[list[int], float] | None:
    """The smaller of a cluster's two main parts when they are further apart than ``threshold``."""
    if len(item_ids) < 2 * max(min_part, 1):
        return None
    from sklearn.cluster import AgglomerativeClustering  # noqa: PLC0415

    labels = AgglomerativeClustering(n_clusters=2, metric="cosine", linkage="average").fit_predict(vectors)
    parts = [np.flatnonzero(labels == k) for k in (0, 1)]
    if min(len(p) for p in parts) < min_part:
        return None
    a, b = (clustering.normalise(vectors[p].sum(axis=0)[None, :])[0] for p in parts)
    distance = float(1.0 - a @ b)
    if distance <= threshold:
        return None
    smaller = min(parts, key=len)
    return sorted(item_ids[i] for i in smaller), distance


# --- moderators and experts ---------------------------------------------------------------------------------------


def can_triage(user) -> bool:
    return roles.has_role(user, roles.MODERATOR, roles.ADMIN)


def can_see(user, cluster: Cluster) -> bool:
    """Moderators see every cluster; domain experts the ones routed to a group of theirs or owned by them."""
    if can_triage(user):
        return True
    if not roles.has_role(user, roles.DOMAIN_EXPERT):
        return False
    if cluster.owner_id == user.pk:
        return True
    return cluster.status == Status.NEEDS_EXPERT and cluster.routed_group is not None and (
        cluster.routed_group.name in roles.user_roles(user))


def _require_triage(user) -> None:
    if not can_triage(user):
        raise PermissionDenied("Only moderators can do this in the triage queue.")


def _locked(cluster_id: int, actor) -> Cluster:
    cluster = (Cluster.objects.select_for_update(of=("self",)).select_related("routed_group")
               .filter(pk=cluster_id).first())
    if cluster is None:
        raise ValidationError({"cluster": f"Cluster #{cluster_id} does not exist."})
    if not can_see(actor, cluster):
        raise PermissionDenied("This cluster is not routed to you.")
    return cluster


def _event(cluster: Cluster, actor, action: str, **detail: Any) -> None:
    ClusterEvent.objects.create(cluster=cluster, actor=actor if getattr(actor, "pk", None) else None,
                                action=action, detail=detail)


def claim_is_active(cluster: Cluster, now: dt.datetime | None = None) -> bool:
    now = now or timezone.now()
    return bool(cluster.claimed_by_id and cluster.claim_expires_at and cluster.claim_expires_at > now)


@transaction.atomic
def cluster_claim(*, actor, cluster_id: int) -> Cluster:
    """Claim the cluster for TRIAGE_CLAIM_MINUTES (renewing one's own claim). A new cluster moves to triaging and an
    unowned one gets the claimer as owner. Someone else's live claim: ValidationError."""
    cluster = _locked(cluster_id, actor)
    now = timezone.now()
    if claim_is_active(cluster, now) and cluster.claimed_by_id != actor.pk:
        raise ValidationError({"cluster": f"Claimed by {cluster.claimed_by} until "
                                          f"{timezone.localtime(cluster.claim_expires_at):%H:%M}."})
    if cluster.status == Status.CLOSED:
        raise ValidationError({"cluster": "This cluster is closed; reopen it first."})
    cluster.claimed_by = actor
    cluster.claim_expires_at = now + dt.timedelta(minutes=int(setting("TRIAGE_CLAIM_MINUTES")))
    if cluster.owner_id is None:
        cluster.owner = actor
    if cluster.status == Status.NEW:
        cluster.status = Status.TRIAGING
        cluster.status_changed_at = now
    cluster.save()
    _event(cluster, actor, "claim", until=cluster.claim_expires_at.isoformat())
    return cluster


@transaction.atomic
def cluster_release(*, actor, cluster_id: int) -> Cluster:
    cluster = _locked(cluster_id, actor)
    if cluster.claimed_by_id not in (None, actor.pk) and claim_is_active(cluster) and not can_triage(actor):
        raise PermissionDenied("Only the claimer or a moderator can release this claim.")
    cluster.claimed_by = None
    cluster.claim_expires_at = None
    cluster.save()
    _event(cluster, actor, "release")
    return cluster


EXPERT_STATUSES = {Status.CORRECTED, Status.NEEDS_EXPERT, Status.CLOSED}


@transaction.atomic
def cluster_set_status(*, actor, cluster_id: int, status: str, resolution: str = "") -> Cluster:
    """Move a cluster along new → triaging → needs expert → corrected → closed (fixed / won't fix / duplicate).
    Closing needs a resolution; reopening (any other status) clears it. Experts may mark routed clusters corrected
    or closed; everything else is for moderators."""
    cluster = _locked(cluster_id, actor)
    if status not in Status.values:
        raise ValidationError({"status": f"Unknown status {status!r}."})
    if not can_triage(actor) and status not in EXPERT_STATUSES:
        raise PermissionDenied("Domain experts can mark a routed cluster corrected or closed.")
    if status == Status.CLOSED:
        if resolution not in (Resolution.FIXED, Resolution.WONT_FIX, Resolution.DUPLICATE):
            raise ValidationError({"resolution": "Closing needs a resolution: fixed, won't fix or duplicate."})
    else:
        resolution = ""
    before = cluster.status
    cluster.status, cluster.resolution = status, resolution
    cluster.is_open = status != Status.CLOSED
    cluster.status_changed_at = timezone.now()
    if not cluster.is_open:
        cluster.claimed_by, cluster.claim_expires_at = None, None
    cluster.save()
    _event(cluster, actor, "status", before=before, after=status, resolution=resolution)
    return cluster


def _user(user_id: int | None):
    from django.contrib.auth import get_user_model  # noqa: PLC0415

    if user_id in (None, ""):
        return None
    user = get_user_model().objects.filter(pk=user_id, is_active=True).first()
    if user is None:
        raise ValidationError({"owner": f"User #{user_id} does not exist."})
    return user


@transaction.atomic
def clusters_assign(*, actor, cluster_ids: Iterable[int], owner_id: int | None) -> int:
    """Set (or clear, with None) the owner of the clusters."""
    _require_triage(actor)
    owner = _user(owner_id)
    count = 0
    for cluster_id in sorted(set(cluster_ids)):
        cluster = _locked(cluster_id, actor)
        cluster.owner = owner
        cluster.save()
        _event(cluster, actor, "assign", owner=owner.get_username() if owner else None)
        count += 1
    return count


@transaction.atomic
def clusters_route(*, actor, cluster_ids: Iterable[int], group_name: str = roles.DOMAIN_EXPERT,
                   assignee_id: int | None = None) -> int:
    """Route clusters to domain experts: status "needs expert", the group that should look, optionally an owner."""
    _require_triage(actor)
    group = Group.objects.filter(name=group_name).first()
    if group is None:
        raise ValidationError({"group": f"No group named {group_name!r}."})
    assignee = _user(assignee_id)
    count = 0
    for cluster_id in sorted(set(cluster_ids)):
        cluster = _locked(cluster_id, actor)
        if cluster.status == Status.CLOSED:
            raise ValidationError({"cluster": f"Cluster #{cluster_id} is closed."})
        before = cluster.status
        cluster.status, cluster.routed_group = Status.NEEDS_EXPERT, group
        cluster.status_changed_at = timezone.now()
        if assignee is not None:
            cluster.owner = assignee
        cluster.save()
        _event(cluster, actor, "route", group=group.name, before=before,
               assignee=assignee.get_username() if assignee else None)
        count += 1
    return count


MAX_GUIDANCE = 4000


@transaction.atomic
def cluster_set_guidance(*, actor, cluster_id: int, guidance: str) -> Cluster:
    """The note the recall API returns with this cluster's cases (moderators, and experts it is routed to)."""
    cluster = _locked(cluster_id, actor)
    guidance = (guidance or "").strip()
    if len(guidance) > MAX_GUIDANCE:
        raise ValidationError({"guidance": f"At most {MAX_GUIDANCE} characters."})
    cluster.guidance = guidance
    cluster.save()
    _event(cluster, actor, "guidance")
    return cluster


def _recompute(cluster_ids: Iterable[int]) -> None:
    """Recompute sums, centroid and numbers of clusters from their members (after moves and merges)."""
    severities = _severities()
    day_ago = timezone.now() - dt.timedelta(hours=24)
    for cluster in Cluster.objects.select_for_update().filter(pk__in=list(cluster_ids)).order_by("pk"):
        item_ids, vectors = _member_vectors(cluster.pk, limit=10**9)
        rows = list(ClusterMember.objects.filter(cluster=cluster).values_list(
            "item_id", "item_at", "item__environment", "item__model_version", "item__tag_ids", "item__is_negative"))
        total = vectors.sum(axis=0) if len(vectors) else np.zeros(DIMENSIONS, np.float32)
        cluster.vector_sum = total.astype(np.float32)
        if len(vectors):
            cluster.centroid = clustering.normalise(total[None, :])[0]
            sims = clustering.normalise(vectors) @ np.asarray(cluster.centroid)
            with connection.cursor() as cursor:
                cursor.execute(
                    """UPDATE triage_clustermember m SET distance = v.d
                       FROM unnest(%s::bigint[], %s::double precision[]) AS v(id, d) WHERE m.item_id = v.id""",
                    [item_ids, [float(1.0 - x) for x in sims.tolist()]],
                )
        cluster.size = len(rows)
        cluster.negative_count = sum(1 for r in rows if r[5])
        cluster.growth_24h = sum(1 for r in rows if r[1] and r[1] > day_ago)
        cluster.environments = sorted({r[2] for r in rows if r[2]})
        cluster.model_versions = sorted({r[3] for r in rows if r[3]})
        cluster.tag_ids = sorted({t for r in rows for t in (r[4] or [])} | set(cluster.tag_ids))
        cluster.max_severity = max((severities.get(t, 0) for t in cluster.tag_ids), default=0)
        cluster.last_item_at = max((r[1] for r in rows if r[1]), default=None)
        _refresh_derived([cluster], force_title=True)
        cluster.save()


@transaction.atomic
def clusters_merge(*, actor, cluster_ids: Iterable[int], into_id: int) -> Cluster:
    """Move every member of ``cluster_ids`` into cluster ``into_id``; the others close as duplicates of it (they
    keep their history and point at the survivor)."""
    _require_triage(actor)
    others = sorted(set(cluster_ids) - {into_id})
    if not others:
        raise ValidationError({"cluster_ids": "Choose at least one other cluster to merge into this one."})
    target = _locked(into_id, actor)
    if not target.is_open:
        raise ValidationError({"into": f"Cluster #{into_id} is closed; merge into an open cluster."})
    for cluster_id in others:
        other = _locked(cluster_id, actor)
        moved = ClusterMember.objects.filter(cluster=other).update(cluster=target, via=ClusterMember.Via.MERGED)
        other.status, other.resolution, other.is_open = Status.CLOSED, Resolution.DUPLICATE, False
        other.duplicate_of = target
        other.size, other.negative_count, other.growth_24h, other.priority = 0, 0, 0, 0.0
        other.claimed_by, other.claim_expires_at = None, None
        other.representative_ids = []
        other.status_changed_at = timezone.now()
        if other.guidance and not target.guidance:
            target.guidance = other.guidance
        other.save()
        _event(other, actor, "merged_into", into=target.pk, members=moved)
        _event(target, actor, "merge", source=other.pk, members=moved)
    target.save()
    ClusterProposal.objects.filter(status=ProposalStatus.PENDING).filter(
        Q(cluster_id__in=others) | Q(other_id__in=others)).update(status=ProposalStatus.STALE)
    _recompute([into_id])
    target.refresh_from_db()
    return target


@transaction.atomic
def members_move(*, actor, item_ids: Iterable[int], to_cluster_id: int | None = None) -> Cluster:
    """Move items (members of any clusters) into cluster ``to_cluster_id``, or with None split them out into a new
    cluster. The clusters they leave and join are recomputed; a cluster left empty closes as a duplicate."""
    _require_triage(actor)
    ids = sorted({int(i) for i in item_ids})
    members = list(ClusterMember.objects.select_for_update().filter(item_id__in=ids))
    if not members:
        raise ValidationError({"item_ids": "Choose at least one member."})
    missing = set(ids) - {m.item_id for m in members}
    if missing:
        raise ValidationError({"item_ids": f"Not in any cluster: {', '.join(map(str, sorted(missing)))}."})
    sources = sorted({m.cluster_id for m in members})
    for source in sources:
        _locked(source, actor)
    if to_cluster_id is None:
        target = Cluster.objects.create(centroid=_zero(), vector_sum=_zero(), status=Status.NEW)
        via, action = ClusterMember.Via.SPLIT, "split_out"
    else:
        target = _locked(to_cluster_id, actor)
        if not target.is_open:
            raise ValidationError({"to": f"Cluster #{to_cluster_id} is closed."})
        via, action = ClusterMember.Via.MOVED, "move_out"
    ClusterMember.objects.filter(item_id__in=ids).update(cluster=target, via=via)
    for source in sources:
        _event(Cluster(pk=source), actor, action, to=target.pk, items=ids)
    _event(target, actor, "split_from" if to_cluster_id is None else "move_in", sources=sources, items=ids)
    _recompute([*sources, target.pk])
    for emptied in Cluster.objects.filter(pk__in=sources, size=0):
        emptied.status, emptied.resolution, emptied.is_open = Status.CLOSED, Resolution.DUPLICATE, False
        emptied.duplicate_of = target
        emptied.save()
    target.refresh_from_db()
    return target


@transaction.atomic
def cluster_tag_members(*, actor, cluster_id: int, tag_id: int) -> int:
    """Tag every member's reply: one whole-reply annotation per reply (turn) carrying the tag, written through the
    review services (so recall and the audit trail see it). Replies already tagged so from this cluster are skipped.
    Returns the number of annotations created."""
    from annotations import services as review  # noqa: PLC0415
    from annotations.models import Annotation, Tag  # noqa: PLC0415
    from sessions.models import Turn, TurnRole  # noqa: PLC0415

    _require_triage(actor)
    cluster = _locked(cluster_id, actor)
    tag = Tag.objects.filter(pk=tag_id, is_active=True).first()
    if tag is None:
        raise ValidationError({"tag": f"Tag #{tag_id} does not exist or is inactive."})
    turn_ids = set(ClusterMember.objects.filter(cluster=cluster).values_list("item__turn_id", flat=True))
    done = set(Annotation.objects.filter(turn_id__in=turn_ids, author=actor, deleted_at__isnull=True, tags=tag)
               .values_list("turn_id", flat=True))
    created = 0
    body = f"Triage cluster #{cluster.pk}: {cluster.title}"[:500]
    for turn in Turn.objects.filter(pk__in=turn_ids - done, role=TurnRole.ASSISTANT).order_by("pk"):
        annotation = review.annotation_create(actor=actor, turn=turn, body=body, tag_ids=[tag.pk])
        ClusterTagging.objects.create(cluster=cluster, annotation=annotation)
        created += 1
    if tag.pk not in cluster.tag_ids:
        cluster.tag_ids = sorted([*cluster.tag_ids, tag.pk])
    cluster.max_severity = max(cluster.max_severity, tag.severity)
    cluster.priority = priority_of(size=cluster.size, growth_24h=cluster.growth_24h,
                                   max_severity=cluster.max_severity, negative_count=cluster.negative_count)
    cluster.save()
    _event(cluster, actor, "tag", tag=tag.name, annotations=created)
    return created


@transaction.atomic
def proposal_decide(*, actor, proposal_id: int, accept: bool) -> ClusterProposal:
    """Accept (merge, or split the items out into a new cluster) or reject a re-cluster proposal."""
    _require_triage(actor)
    proposal = ClusterProposal.objects.select_for_update().filter(pk=proposal_id).first()
    if proposal is None or proposal.status != ProposalStatus.PENDING:
        raise ValidationError({"proposal": "This proposal was already decided or is out of date."})
    if accept:
        if proposal.kind == ProposalKind.MERGE:
            clusters_merge(actor=actor, cluster_ids=[proposal.cluster_id], into_id=proposal.other_id)
        else:
            still = list(ClusterMember.objects.filter(cluster_id=proposal.cluster_id, item_id__in=proposal.item_ids)
                         .values_list("item_id", flat=True))
            if not still:
                raise ValidationError({"proposal": "None of these items are in the cluster any more."})
            members_move(actor=actor, item_ids=still, to_cluster_id=None)
    proposal.status = ProposalStatus.ACCEPTED if accept else ProposalStatus.REJECTED
    proposal.decided_by, proposal.decided_at = actor, timezone.now()
    proposal.save()
    return proposal
