"""The clustering job's set-based SQL, in one place: what it reads (new vectors, open clusters' sums, as binary
numpy arrays) and the statements that write a batch, move the growth window and find merge candidates.

Every statement is assembled from fixed identifiers of this module; request values never reach them (the job has no
request). Each constant's comment says what it does and why it is shaped so.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import psycopg
from django.db import connection
from pgvector.psycopg.vector import VectorBinaryLoader

from annotations.models import Tag
from feedbackhub.vectors import vector_literal

#: Key of the PostgreSQL advisory lock every clustering step takes ("triage" in ASCII).
LOCK_KEY = 0x747269616765


REPRESENTATIVES = 3


_vector_oids: dict[str, int] = {}


def fetch_binary(sql: str, params: Any) -> list[tuple]:
    """Run ``sql`` on Django's connection (same transaction) with binary results, ``vector`` columns loaded straight
    into float32 numpy arrays (parsing their text form costs far more than the query)."""

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


def try_lock() -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_xact_lock(%s)", [LOCK_KEY])
        return bool(cursor.fetchone()[0])


def job_transaction_settings() -> None:
    """The job's statements touch thousands of rows and look expensive to the planner, which then compiles them
    (JIT) for longer than they run: off for this transaction."""
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL jit = off")


def vector_literal_f32(vector: np.ndarray) -> str:
    return vector_literal(np.asarray(vector, dtype=np.float32))  # the column's precision, as stored


def array_literal(values) -> str:  # noqa: ANN001
    """Numbers as a PostgreSQL array literal, for a parameter the statement casts (``%(x)s::bigint[]``): ten times
    cheaper to send than letting the driver adapt a list of 10,000 Python numbers one by one."""
    return "{" + ",".join(map(str, values)) + "}"


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
           count(*) FILTER (WHERE item_at > %(cut)s) AS fresh, max(item_at) AS last_at, min(item_at) AS first_at,
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
    oldest_item_at = LEAST(c.oldest_item_at, n.first_at),
    representative_ids = {representative_ids},
    representative_distances = {representative_distances},
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


def add_members_sql() -> str:

    return ADD_MEMBERS_SQL.format(
        tag_table=connection.ops.quote_name(Tag._meta.db_table),
        environments=_merged("environments", "n.envs", collate=' COLLATE "C"'),
        model_versions=_merged("model_versions", "n.versions", collate=' COLLATE "C"'),
        tag_ids=_merged("tag_ids", "n.tags"),
        representatives=REPRESENTATIVES,
        representative_ids=_nearest_of("representative_ids"),
        representative_distances=_nearest_of("representative_distances"),
    )


WRITE_CLUSTERS_SQL = """
UPDATE triage_cluster c SET
    size = v.size,
    negative_count = v.negative_count, growth_24h = v.growth_24h, environments = v.environments,
    model_versions = v.model_versions, tag_ids = v.tag_ids, max_severity = v.max_severity,
    last_item_at = v.last_item_at, representative_ids = v.representative_ids,
    representative_distances = v.representative_distances, title = v.title, terms = v.terms,
    samples = v.samples, titled_size = v.titled_size, updated_at = %s
FROM jsonb_to_recordset(%s::jsonb) AS v(
    id bigint, size integer, negative_count integer, growth_24h integer,
    environments text[], model_versions text[], tag_ids bigint[], max_severity smallint, last_item_at timestamptz,
    representative_ids bigint[], representative_distances double precision[], title text, terms text[],
    samples text[], titled_size integer)
WHERE c.id = v.id
"""


#: Every cluster's exact count (the first run, the hourly full scan): members later than the cut, from the aging
#: index (a day's members), written only where it differs.
RECOUNT_GROWTH_SQL = """
UPDATE triage_cluster c SET growth_24h = COALESCE(g.n, 0), updated_at = %(now)s
FROM (SELECT c.id, f.n FROM triage_cluster c
      LEFT JOIN (SELECT m.cluster_id, count(*) AS n FROM triage_clustermember m WHERE m.item_at > %(cut)s
                 GROUP BY m.cluster_id) f ON f.cluster_id = c.id
      WHERE c.growth_24h > 0 OR f.n IS NOT NULL) g
WHERE c.id = g.id AND c.growth_24h <> COALESCE(g.n, 0)
"""


#: Moving the cut: members whose feedback time lies between the previous cut and this one leave (or, if the clock
#: went back, re-enter) their clusters' counts.
SHIFT_GROWTH_SQL = """
UPDATE triage_cluster c SET growth_24h = GREATEST(0, c.growth_24h + %(sign)s * d.n), updated_at = %(now)s
FROM (SELECT m.cluster_id, count(*) AS n FROM triage_clustermember m
      WHERE m.item_at > %(low)s AND m.item_at <= %(high)s GROUP BY m.cluster_id) d
WHERE c.id = d.cluster_id
"""


MERGE_SQL = """
SELECT c.id, nn.id, nn.dist
FROM triage_cluster c
CROSS JOIN LATERAL (
    SELECT o.id, (o.centroid <=> c.centroid) AS dist FROM triage_cluster o
    WHERE o.is_open AND o.id <> c.id ORDER BY o.centroid <=> c.centroid LIMIT 1
) nn
WHERE c.is_open AND nn.dist <= %s
"""
