"""Writes of the triage app: the clustering job, the re-cluster proposals, and what moderators and experts do.

The clustering job (:func:`triage_run`) works in batches of new feedback items (embedded by the active model, not yet
in a cluster), one transaction per batch, each taking a transaction-level advisory lock first. A batch:

1. moves every cluster's growth_24h to this run's 24-hour window (only clusters with members between the previous
   cut and this one are recounted);
2. finds each item's nearest open cluster exactly (one matrix product of the batch against the open clusters'
   running sums); items within ``TRIAGE_ASSIGN_DISTANCE`` (cosine distance) join it;
3. groups the rest with ``clustering.group`` (average linkage, ``TRIAGE_NEW_CLUSTER_DISTANCE``) into new clusters;
4. writes the member rows (which mark the items as clustered) in one INSERT from arrays, then every touched
   cluster's running sum, centroid, size, growth, environments, model versions, tags, severity, representatives
   and priority in one UPDATE that aggregates the batch in SQL; titles only of clusters that are new or have
   doubled since their last title.

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
from feedbackhub.vectors import vector_literal

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
    return vector_literal(np.asarray(vector, dtype=np.float32))  # the column's precision, as stored


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


PENDING_SQL = """
SELECT i.id, e.id, e.vector
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
#: Cursor row holding the growth cut (microseconds since the epoch) the clusters' growth_24h counts are relative to.
GROWTH_CURSOR_NAME = "growth_cut"
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
GROWTH_WINDOW = dt.timedelta(hours=24)


def _pending(limit: int, after: int = 0) -> Pending:
    """Up to ``limit`` clusterable items not yet in a cluster whose current vector's id is above ``after``."""
    rows = _fetch(PENDING_SQL, {"model": _active_model(), "limit": limit, "after": after})
    vectors = np.stack([r[2] for r in rows]) if rows else np.zeros((0, DIMENSIONS), np.float32)
    return Pending(item_ids=[r[0] for r in rows], embedding_ids=[r[1] for r in rows], vectors=vectors)


def _nearest_open(vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(nearest open cluster id, cosine distance) per vector, exact; cluster id 0 when there is no open cluster.

    The open clusters' running sums are read in one query (binary, straight into numpy) and compared with the batch
    in numpy: one matrix product of the batch against every centroid (10k x 3,000 x 384 take a few hundred
    milliseconds of one core), exact and repeatable, which an approximate index search is not (see the note on
    Cluster's indexes). The same exact search inside PostgreSQL (no index) computes those 30 million distances one
    by one, far slower. (Reading the vectors as one ``string_agg`` buffer instead of rows was tried: it cost the
    database ten times the CPU.)"""
    none = np.zeros(len(vectors), dtype=np.int64), np.full(len(vectors), np.inf)
    if not len(vectors):
        return none
    rows = _fetch("SELECT id, vector_sum FROM triage_cluster WHERE is_open AND size > 0 ORDER BY id", None)
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


def _zero() -> list[float]:
    return [0.0] * DIMENSIONS


def _priority_sql(size: str, growth: str, severity: str, negative: str) -> str:
    """``priority_of`` as an SQL expression over the given column expressions (same order of operations)."""
    return (f"round((10 * ln(1 + ({size})::float8) + 15 * ln(1 + ({growth})::float8) + 5 * ({severity})"
            f" + CASE WHEN ({size}) > 0 THEN 10 * (({negative})::float8 / ({size})) ELSE 0 END)::numeric, 4)::float8")


def _job_transaction_settings() -> None:
    """The job's statements touch thousands of rows and look expensive to the planner, which then compiles them
    (JIT) for longer than they run: off for this transaction."""
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL jit = off")


def _batch(batch_size: int, now: dt.datetime, result: RunResult, *, full_scan: bool = False) -> bool:
    """One batch in one transaction. False when there is nothing more to do (the batch was not full) or the lock
    was taken."""
    with transaction.atomic():
        if not _try_lock():
            result.locked_out = True
            return False
        _job_transaction_settings()
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
    zero = _vector_literal(np.zeros(DIMENSIONS, dtype=np.float32))
    columns = ["id", "title", "terms", "status", "resolution", "is_open", "centroid", "vector_sum", "size",
               "negative_count", "growth_24h", "max_severity", "environments", "model_versions", "tag_ids",
               "representative_ids", "representative_distances", "priority", "titled_size", "guidance",
               "created_at", "updated_at"]
    with connection.connection.cursor() as cursor, cursor.copy(
        f"COPY triage_cluster ({', '.join(columns)}) FROM STDIN"
    ) as copy:
        for pk, centre in zip(ids, centres, strict=True):
            copy.write_row((pk, "Untitled cluster", "{}", Status.NEW, "", True, _vector_literal(centre), zero, 0, 0,
                            0, 0, "{}", "{}", "{}", "{}", "{}", 0.0, 0, "", now, now))
    return ids


def _merged(column: str, added: str, *, collate: str = "") -> str:
    """``column`` with the values of the array ``added`` it lacks, sorted (unchanged when nothing is new).
    Both are fixed identifiers of this module, never input."""
    return (f"CASE WHEN {added} IS NULL OR {added} <@ c.{column} THEN c.{column} "  # noqa: S608
            f"ELSE ARRAY(SELECT x FROM unnest(c.{column} || {added}) AS x GROUP BY x ORDER BY x{collate}) END")


#: The batch's writes in one statement. ``v``: the members with what the item says (one index look-up per item);
#: ``ins``: their member rows (which mark the items as clustered); ``s``: the vector sum per cluster, from the stored
#: vectors (nothing 384 numbers wide is sent); ``b``: counts, where and when, and the three nearest new members per
#: cluster; ``t``: tags and their highest severity. The UPDATE adds these to each touched cluster as the row is when
#: the UPDATE reaches it (a concurrent change such as a merge's recount is added to, not overwritten).
#: Representatives: the three nearest of the current ones and the batch's three nearest, by the distance stored
#: when each joined (kept on the row with them, so no member rows are read). The ``OFFSET 0`` keeps the vector
#: look-ups per member through the primary key, whatever the planner thinks of the size of the embedding table, in
#: cluster order, so the sums are taken without sorting rows that carry vectors.
ADD_MEMBERS_SQL = """
WITH v AS MATERIALIZED (
    SELECT v.cluster_id, v.item_id, v.embedding_id, v.distance, i.is_negative,
           COALESCE(i.occurred_at, i.created_at) AS item_at, i.environment, i.model_version, i.tag_ids
    FROM unnest(%(clusters)s::bigint[], %(items)s::bigint[], %(embeddings)s::bigint[], %(distances)s::float8[])
        AS v(cluster_id, item_id, embedding_id, distance)
    JOIN recall_feedbackitem i ON i.id = v.item_id
), ins AS (
    INSERT INTO triage_clustermember (cluster_id, item_id, distance, item_at, via, added_at)
    SELECT cluster_id, item_id, distance, item_at, %(via)s, %(now)s FROM v
), s AS (
    SELECT o.cluster_id, sum(e.vector) AS s
    FROM (SELECT cluster_id, embedding_id FROM v ORDER BY cluster_id) o
    CROSS JOIN LATERAL (SELECT e.vector FROM recall_embedding e WHERE e.id = o.embedding_id OFFSET 0) e
    GROUP BY o.cluster_id
), b AS (
    SELECT cluster_id, count(*) AS n, count(*) FILTER (WHERE is_negative) AS negative,
           count(*) FILTER (WHERE item_at > %(cut)s) AS fresh, max(item_at) AS last_at,
           array_agg(DISTINCT environment) FILTER (WHERE environment <> '') AS envs,
           array_agg(DISTINCT model_version) FILTER (WHERE model_version <> '') AS versions,
           (array_agg(item_id ORDER BY distance, item_id))[1:{representatives}] AS rep_ids,
           (array_agg(distance ORDER BY distance, item_id))[1:{representatives}] AS rep_distances
    FROM v GROUP BY cluster_id
), t AS (
    SELECT v.cluster_id, array_agg(DISTINCT tag) AS tags, max(COALESCE(tg.severity, 0)) AS severity
    FROM v CROSS JOIN LATERAL unnest(v.tag_ids) AS tag LEFT JOIN {tag_table} tg ON tg.id = tag
    WHERE cardinality(v.tag_ids) > 0
    GROUP BY v.cluster_id
), n AS (
    SELECT b.*, s.s, t.tags, COALESCE(t.severity, 0) AS severity
    FROM b JOIN s ON s.cluster_id = b.cluster_id LEFT JOIN t ON t.cluster_id = b.cluster_id
)
UPDATE triage_cluster c SET
    vector_sum = c.vector_sum + n.s,
    centroid = l2_normalize(c.vector_sum + n.s),
    size = c.size + n.n,
    negative_count = c.negative_count + n.negative,
    growth_24h = c.growth_24h + n.fresh,
    max_severity = GREATEST(c.max_severity, n.severity),
    environments = {environments},
    model_versions = {model_versions},
    tag_ids = {tag_ids},
    last_item_at = GREATEST(c.last_item_at, n.last_at),
    representative_ids = {representative_ids},
    representative_distances = {representative_distances},
    priority = {priority},
    updated_at = %(now)s
FROM n
WHERE c.id = n.cluster_id
RETURNING c.id, c.size, c.titled_size
"""


def _nearest_of(column: str) -> str:
    """``column`` ("representative_ids" or "representative_distances"): the three nearest among the cluster's
    representatives and the batch's nearest members; unchanged (no sorting) when the cluster has its three and
    none of the batch is nearer than the third."""
    value = "id" if column == "representative_ids" else "d"
    return (f"CASE WHEN cardinality(c.representative_distances) >= {REPRESENTATIVES}"  # noqa: S608
            f" AND n.rep_distances[1] > c.representative_distances[{REPRESENTATIVES}] THEN c.{column}"
            f" ELSE ARRAY(SELECT r.{value} FROM (SELECT * FROM unnest(c.representative_ids,"
            " c.representative_distances) UNION ALL SELECT * FROM unnest(n.rep_ids, n.rep_distances)) AS r(id, d)"
            f" ORDER BY r.d, r.id LIMIT {REPRESENTATIVES}) END")


def _add_members_sql() -> str:
    from annotations.models import Tag  # noqa: PLC0415

    return ADD_MEMBERS_SQL.format(
        tag_table=connection.ops.quote_name(Tag._meta.db_table),
        environments=_merged("environments", "n.envs", collate=' COLLATE "C"'),
        model_versions=_merged("model_versions", "n.versions", collate=' COLLATE "C"'),
        tag_ids=_merged("tag_ids", "n.tags"),
        representatives=REPRESENTATIVES,
        representative_ids=_nearest_of("representative_ids"),
        representative_distances=_nearest_of("representative_distances"),
        priority=_priority_sql("c.size + n.n", "c.growth_24h + n.fresh", "GREATEST(c.max_severity, n.severity)",
                               "c.negative_count + n.negative"),
    )


def _array_literal(values) -> str:  # noqa: ANN001
    """Numbers as a PostgreSQL array literal, for a parameter the statement casts (``%(x)s::bigint[]``): ten times
    cheaper to send than letting the driver adapt a list of 10,000 Python numbers one by one."""
    return "{" + ",".join(map(str, values)) + "}"


def _add_members(cluster_ids: list[int], pending: Pending, distances: list[float],
                 now: dt.datetime) -> list[tuple[int, int, int]]:
    """Write the batch's member rows and add them to their clusters' numbers (ADD_MEMBERS_SQL, one statement);
    (id, size, titled_size) of each touched cluster."""
    with connection.cursor() as cursor:
        cursor.execute(_add_members_sql(), {
            "clusters": _array_literal(cluster_ids), "items": _array_literal(pending.item_ids),
            "embeddings": _array_literal(pending.embedding_ids), "distances": _array_literal(distances),
            "via": ClusterMember.Via.JOB, "now": now, "cut": _growth_cut(now),
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
    import json  # noqa: PLC0415

    payload = [{"id": c.pk, "title": c.title, "terms": list(c.terms), "titled_size": c.titled_size} for c in stale]
    with connection.cursor() as cursor:
        cursor.execute(
            """UPDATE triage_cluster c SET title = v.title, terms = v.terms, titled_size = v.titled_size
               FROM jsonb_to_recordset(%s::jsonb) AS v(id bigint, title text, terms text[], titled_size integer)
               WHERE c.id = v.id""",
            [json.dumps(payload)],
        )
    return len(stale)


WRITE_CLUSTERS_SQL = """
UPDATE triage_cluster c SET
    size = v.size,
    negative_count = v.negative_count, growth_24h = v.growth_24h, environments = v.environments,
    model_versions = v.model_versions, tag_ids = v.tag_ids, max_severity = v.max_severity,
    last_item_at = v.last_item_at, representative_ids = v.representative_ids,
    representative_distances = v.representative_distances, title = v.title, terms = v.terms,
    titled_size = v.titled_size, priority = v.priority, updated_at = %s
FROM jsonb_to_recordset(%s::jsonb) AS v(
    id bigint, size integer, negative_count integer, growth_24h integer,
    environments text[], model_versions text[], tag_ids bigint[], max_severity smallint, last_item_at timestamptz,
    representative_ids bigint[], representative_distances double precision[], title text, terms text[],
    titled_size integer, priority double precision)
WHERE c.id = v.id
"""


def _write_clusters(clusters: list[Cluster], now: dt.datetime) -> None:
    """Write the numbers of ``clusters`` held in Python in one statement (the re-cluster's refresh; Django's
    bulk_update builds a CASE per field and row, which costs seconds for thousands of clusters)."""
    import json  # noqa: PLC0415

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
        "titled_size": c.titled_size, "priority": c.priority,
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
        c.representative_ids = [item_id for item_id, _ in reps.get(c.pk, [])]
        c.representative_distances = [distance for _, distance in reps.get(c.pk, [])]
        c.priority = priority_of(size=c.size, growth_24h=c.growth_24h, max_severity=c.max_severity,
                                 negative_count=c.negative_count)
    _retitle([c for c in clusters if force_title or c.pk in new_ids or c.size >= 2 * max(c.titled_size, 1)])


def _growth_cut(now: dt.datetime) -> dt.datetime:
    """Members whose feedback is later than this count as growth (the last 24 hours)."""
    return now - GROWTH_WINDOW


def _micros(at: dt.datetime) -> int:
    return (at - EPOCH) // dt.timedelta(microseconds=1)


#: Every cluster's exact count (the first run, the hourly full scan): members later than the cut, from the aging
#: index (a day's members), written only where it differs.
RECOUNT_GROWTH_SQL = """
UPDATE triage_cluster c SET growth_24h = COALESCE(g.n, 0), priority = {priority}, updated_at = %(now)s
FROM (SELECT c.id, f.n FROM triage_cluster c
      LEFT JOIN (SELECT m.cluster_id, count(*) AS n FROM triage_clustermember m WHERE m.item_at > %(cut)s
                 GROUP BY m.cluster_id) f ON f.cluster_id = c.id
      WHERE c.growth_24h > 0 OR f.n IS NOT NULL) g
WHERE c.id = g.id AND c.growth_24h <> COALESCE(g.n, 0)
"""
#: Moving the cut: members whose feedback time lies between the previous cut and this one leave (or, if the clock
#: went back, re-enter) their clusters' counts.
SHIFT_GROWTH_SQL = """
UPDATE triage_cluster c SET growth_24h = GREATEST(0, c.growth_24h + %(sign)s * d.n), priority = {priority},
    updated_at = %(now)s
FROM (SELECT m.cluster_id, count(*) AS n FROM triage_clustermember m
      WHERE m.item_at > %(low)s AND m.item_at <= %(high)s GROUP BY m.cluster_id) d
WHERE c.id = d.cluster_id
"""


def _age_growth(now: dt.datetime, *, full: bool = False) -> int:
    """Move growth_24h to the window ending at ``now``; call under the job's lock. Returns clusters changed.

    Every cluster's growth_24h counts its members whose feedback is later than the cut, a Cursor row (locked until
    the transaction ends, so a merge's recount, which reads it too, waits). Moving the cut takes off the members
    between the previous cut and this one, found by an index range on ``item_at`` (a minute's worth of members per
    run), so a run costs what aged out, not a recount of every cluster with recent members. ``full`` (the hourly
    re-cluster) and the first run recount everything."""
    cut = _growth_cut(now)
    row, created = Cursor.objects.select_for_update().get_or_create(name=GROWTH_CURSOR_NAME,
                                                                   defaults={"value": _micros(cut)})
    previous = EPOCH + dt.timedelta(microseconds=row.value)
    params: dict[str, Any] = {"cut": cut, "now": now}
    if created or full:
        sql = RECOUNT_GROWTH_SQL.format(
            priority=_priority_sql("c.size", "COALESCE(g.n, 0)", "c.max_severity", "c.negative_count"))
    elif previous == cut:
        return 0
    else:
        params.update(low=min(previous, cut), high=max(previous, cut), sign=-1 if cut > previous else 1)
        sql = SHIFT_GROWTH_SQL.format(priority=_priority_sql(
            "c.size", "GREATEST(0, c.growth_24h + %(sign)s * d.n)", "c.max_severity", "c.negative_count"))
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
        return _growth_cut(now or timezone.now())
    return EPOCH + dt.timedelta(microseconds=row.value)


def _refresh_growth(now: dt.datetime, *, full: bool = False) -> int:
    """``_age_growth`` in a transaction of its own, when no batch ran (the window still moves every minute)."""
    with transaction.atomic():
        if not _try_lock():
            return 0
        _job_transaction_settings()
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


def _recompute(cluster_ids: Iterable[int], *, growth_cut: dt.datetime) -> None:
    """Recompute sums, centroid and numbers of clusters from their members (after moves and merges)."""
    severities = _severities()
    day_ago = growth_cut  # the job's cut, so its later shifts of the window stay exact
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
    # The growth cut first (before any cluster row), the order the job takes them in: no deadlock with a run.
    cut = growth_cut_for_update()
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
        other.representative_ids, other.representative_distances = [], []
        other.status_changed_at = timezone.now()
        if other.guidance and not target.guidance:
            target.guidance = other.guidance
        other.save()
        _event(other, actor, "merged_into", into=target.pk, members=moved)
        _event(target, actor, "merge", source=other.pk, members=moved)
    target.save()
    ClusterProposal.objects.filter(status=ProposalStatus.PENDING).filter(
        Q(cluster_id__in=others) | Q(other_id__in=others)).update(status=ProposalStatus.STALE)
    _recompute([into_id], growth_cut=cut)
    target.refresh_from_db()
    return target


@transaction.atomic
def members_move(*, actor, item_ids: Iterable[int], to_cluster_id: int | None = None) -> Cluster:
    """Move items (members of any clusters) into cluster ``to_cluster_id``, or with None split them out into a new
    cluster. The clusters they leave and join are recomputed; a cluster left empty closes as a duplicate."""
    _require_triage(actor)
    cut = growth_cut_for_update()  # before any cluster row, as the job takes them (see clusters_merge)
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
    _recompute([*sources, target.pk], growth_cut=cut)
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
