"""Reads of the triage app: the queue, a cluster with its members, the change stamp, guidance for the recall API."""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Iterable
from dataclasses import dataclass, field

from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.db import connection
from django.db.models import Max, Q, QuerySet
from django.utils import timezone

from annotations.models import Tag
from annotations.triage.actions import claim_is_active
from annotations.triage.conf import setting
from annotations.triage.models import (
    Cluster,
    ClusterEvent,
    ClusterMember,
    ClusterProposal,
    ProposalKind,
    ProposalStatus,
    Resolution,
    Status,
)
from annotations.triage.permissions import can_triage, visible_clusters
from feedbackhub import roles
from sessions.models import Environment, FeedbackKind

QUEUE_LIMIT = 50
MEMBERS_LIMIT = 200
#: A cluster is "fast-growing" when at least this many members, and at least half of them, arrived in 24 hours.
FAST_GROWTH_MIN = 3


@dataclass
class QueueFilters:
    status: str = "open"  # "open" (every status but closed), "all", or one status
    owner: str = ""  # "", "me", "none" or a user id
    environment: str = ""
    model_version: str = ""
    tag: int | None = None
    sla_breached: bool = False


def sla_deadline(now: dt.datetime | None = None) -> dt.datetime:
    """Open clusters whose oldest feedback was given before this are past the SLA."""
    return (now or timezone.now()) - dt.timedelta(hours=float(setting("TRIAGE_SLA_HOURS")))


def environment_label(value: str) -> str:
    """The human label of an environment ("Production" for "prod"), the same as the conversation pages use."""
    return _ENVIRONMENT_LABELS.get(value, value)


def environment_choices(values: Iterable[str]) -> list[tuple[str, str]]:
    """(value, label) pairs for a picker."""
    return [(v, environment_label(v)) for v in values]


@functools.lru_cache(maxsize=256)
def _environment_badges(values: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    """A queue row's (value, label) pairs: clusters share a handful of environment sets, so each is worked out once."""
    return tuple(environment_choices(values))


@dataclass(slots=True)
class MergeHint:
    """A pending merge proposal as one queue row shows it: the other cluster and which way the merge goes."""

    proposal_id: int
    other_id: int
    other_title: str
    other_href: str
    into_this: bool  # True: the other cluster would be merged into this row's cluster
    decide_href: str
    other_ref: str  # "#12"
    other_label: str  # '#12 “The visa fee is out of date.”'


@dataclass(slots=True)
class QueueRow:
    """One queue row, ready to print: the queue renders 50 of these for every moderator each time it changes, so
    the display values (labels, badges, age, priority text) are worked out here in plain Python instead of by
    template filters and related-object look-ups per row."""

    pk: int
    id_text: str
    title: str
    terms: str
    subtitle: str  # "#12 · visa · fee · severity 3"
    samples: list[str]
    href: str
    priority: float
    priority_text: str
    size: int
    size_text: str
    growth_24h: int
    growth_text: str
    status: str
    status_label: str
    resolution_label: str
    is_open: bool
    max_severity: int
    environments: tuple[tuple[str, str], ...]
    model_versions: str
    owner: str
    claimed_by: str
    routed: bool
    age: str
    oldest_text: str
    is_fast_growing: bool
    sla_breached: bool
    classes: str
    merges: list[MergeHint] = field(default_factory=list)


QUEUE_COLUMNS = ("pk", "title", "terms", "samples", "priority", "size", "growth_24h", "status", "resolution",
                 "is_open", "max_severity", "environments", "model_versions", "owner__username",
                 "claimed_by__username", "claim_expires_at", "routed_group_id", "created_at", "oldest_item_at")
_STATUS_LABELS = dict(Status.choices)
_RESOLUTION_LABELS = dict(Resolution.choices)
_ENVIRONMENT_LABELS = dict(Environment.choices)
_FEEDBACK_KIND_LABELS = dict(FeedbackKind.choices)
MODEL_VERSIONS_CHARS = 60


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def age_text(age: dt.timedelta) -> str:
    """"5 months", "3 weeks, 2 days", "3 days, 4 hours", "5 hours, 12 minutes", "7 minutes" (the two largest units,
    as ``timesince`` prints; a backlog is counted in months of 30 days)."""
    minutes = max(0, int(age.total_seconds() // 60))
    days, rest = divmod(minutes, 24 * 60)
    hours, minutes = divmod(rest, 60)
    if days >= 60:
        return _plural(days // 30, "month")
    if days >= 14:
        weeks, days = divmod(days, 7)
        return _plural(weeks, "week") + (f", {_plural(days, 'day')}" if days else "")
    if days:
        return _plural(days, "day") + (f", {_plural(hours, 'hour')}" if hours else "")
    if hours:
        return _plural(hours, "hour") + (f", {_plural(minutes, 'minute')}" if minutes else "")
    return _plural(minutes, "minute")


def _sla_filter(deadline: dt.datetime) -> Q:
    """Open and past the SLA: the oldest feedback is older than the deadline (a cluster without members yet counts
    from its creation)."""
    return Q(is_open=True) & (Q(oldest_item_at__lt=deadline)
                              | Q(oldest_item_at__isnull=True, created_at__lt=deadline))


def queue(viewer, filters: QueueFilters, *, limit: int = QUEUE_LIMIT, base: str = "/triage/") -> list[QueueRow]:
    """The queue, highest priority first, as display rows: one query for the cluster columns and two user names,
    and for moderators one more for the pending merge proposals between the rows' clusters and others."""
    qs = visible_clusters(viewer)
    if filters.status == "open":
        qs = qs.filter(is_open=True)
    elif filters.status in Status.values:
        qs = qs.filter(status=filters.status)
    if filters.owner == "me":
        qs = qs.filter(owner_id=viewer.pk)
    elif filters.owner == "none":
        qs = qs.filter(owner__isnull=True)
    elif filters.owner.isdigit():
        qs = qs.filter(owner_id=int(filters.owner))
    if filters.environment:
        qs = qs.filter(environments__contains=[filters.environment])
    if filters.model_version:
        qs = qs.filter(model_versions__contains=[filters.model_version])
    if filters.tag:
        qs = qs.filter(tag_ids__contains=[filters.tag])
    now = timezone.now()
    deadline = sla_deadline(now)
    if filters.sla_breached:
        qs = qs.filter(_sla_filter(deadline))
    rows = []
    for (pk, title, terms, samples, priority, size, growth, status, resolution, is_open, severity, environments,
         versions, owner, claimer, claim_expires_at, routed_group_id, created_at, oldest_at) in (
            qs.order_by("-priority", "-id").values_list(*QUEUE_COLUMNS)[:limit]):
        since = oldest_at or created_at
        growing = growth >= FAST_GROWTH_MIN and 2 * growth >= size
        late = is_open and since < deadline
        versions_text = ", ".join(versions)
        if len(versions_text) > MODEL_VERSIONS_CHARS:
            versions_text = versions_text[:MODEL_VERSIONS_CHARS - 1] + "…"
        terms_text = " · ".join(terms)
        rows.append(QueueRow(
            pk=pk, id_text=str(pk), title=title, terms=terms_text,
            subtitle=f"#{pk}" + (f" · {terms_text}" if terms else "") + (f" · severity {severity}" if severity else ""),
            samples=samples, href=f"{base}c/{pk}/", priority=priority, priority_text=f"{priority:.1f}", size=size,
            size_text=str(size), growth_24h=growth, growth_text=str(growth), status=status,
            status_label=_STATUS_LABELS.get(status, status),
            resolution_label=_RESOLUTION_LABELS.get(resolution, "") if resolution else "", is_open=is_open,
            max_severity=severity, environments=_environment_badges(tuple(environments)), model_versions=versions_text,
            owner=owner or "", claimed_by=(claimer or "") if claim_expires_at and claim_expires_at > now else "",
            routed=routed_group_id is not None, age=age_text(now - since),
            oldest_text=f"{'oldest feedback' if oldest_at else 'since'} {since:%Y-%m-%d %H:%M} UTC",
            is_fast_growing=growing, sla_breached=late,
            classes="triage-row" + (" is-growing" if growing else "") + (" is-late" if late else ""),
        ))
    if rows and can_triage(viewer):
        hints = merge_hints([r.pk for r in rows], base=base)
        for r in rows:
            r.merges = hints.get(r.pk, [])
    return rows


#: Pending merges between open clusters that touch any of the given ones, with both titles. Plain SQL: the queue
#: asks on every render, and building this two-join query through the ORM cost more than running it.
MERGE_HINTS_SQL = f"""
SELECT p.id, p.cluster_id, a.title, p.other_id, b.title
FROM {ClusterProposal._meta.db_table} p
JOIN {Cluster._meta.db_table} a ON a.id = p.cluster_id
JOIN {Cluster._meta.db_table} b ON b.id = p.other_id
WHERE p.kind = %s AND p.status = %s AND a.is_open AND b.is_open
  AND (p.cluster_id = ANY(%s::bigint[]) OR p.other_id = ANY(%s::bigint[]))
ORDER BY p.score, p.id
"""  # noqa: S608 (model tables)


def merge_hints(cluster_ids: list[int], *, base: str = "/triage/") -> dict[int, list[MergeHint]]:
    """Pending merge proposals (the re-cluster's near-duplicates: centroids within TRIAGE_MERGE_DISTANCE) between
    open clusters, for each of ``cluster_ids`` that is one side of one, closest first. One query."""
    out: dict[int, list[MergeHint]] = {}
    with connection.cursor() as cursor:
        cursor.execute(MERGE_HINTS_SQL, [ProposalKind.MERGE.value, ProposalStatus.PENDING.value, cluster_ids,
                                         cluster_ids])
        proposals = cursor.fetchall()
    wanted = set(cluster_ids)
    for pk, small, small_title, large, large_title in proposals:
        for this, other, other_title, into_this in ((small, large, large_title, False),
                                                    (large, small, small_title, True)):
            if this in wanted:
                out.setdefault(this, []).append(MergeHint(
                    proposal_id=pk, other_id=other, other_title=other_title, other_href=f"{base}c/{other}/",
                    into_this=into_this, decide_href=f"{base}proposals/{pk}/decide", other_ref=f"#{other}",
                    other_label=f"#{other} “{other_title}”"))
    return out


def decorate(clusters: Iterable[Cluster]) -> None:
    """Display helpers: badges (fast-growing), claim state, age and SLA from the oldest feedback, labels."""
    now = timezone.now()
    deadline = sla_deadline(now)
    for c in clusters:
        since = c.oldest_item_at or c.created_at
        c.is_fast_growing = c.growth_24h >= FAST_GROWTH_MIN and 2 * c.growth_24h >= c.size
        c.claim_active = claim_is_active(c, now)
        c.sla_breached = c.is_open and since < deadline
        c.age = now - since
        c.age_text = age_text(c.age)
        c.environment_choices = environment_choices(c.environments)


def changed_stamp() -> str:
    """A cheap stamp that changes whenever any cluster changes (max updated_at, an index-only look-up)."""
    latest = Cluster.objects.aggregate(at=Max("updated_at"))["at"]
    return latest.isoformat() if latest else "0"


@dataclass
class MemberRow:
    item_id: int
    conversation_id: int
    turn_id: int
    annotation_id: int | None
    source: str
    kind: str
    text: str
    environment: str
    model_version: str
    is_negative: bool
    distance: float
    item_at: dt.datetime
    via: str
    environment_label: str = ""
    kind_label: str = ""


@dataclass
class ClusterPage:
    cluster: Cluster
    members: list[MemberRow]
    representatives: list[MemberRow]
    events: list[ClusterEvent]
    proposals: list[ClusterProposal]
    tags: list = field(default_factory=list)


def _member_rows(qs: QuerySet[ClusterMember]) -> list[MemberRow]:
    return [
        MemberRow(item_id=r[0], conversation_id=r[1], turn_id=r[2], annotation_id=r[3], source=r[4], kind=r[5],
                  text=r[6], environment=r[7], model_version=r[8], is_negative=r[9], distance=r[10], item_at=r[11],
                  via=r[12], environment_label=environment_label(r[7]),
                  kind_label=_FEEDBACK_KIND_LABELS.get(r[5], r[5]) or "feedback")
        for r in qs.values_list(
            "item_id", "item__conversation_id", "item__turn_id", "item__annotation_id", "item__source", "item__kind",
            "item__text", "item__environment", "item__model_version", "item__is_negative", "distance", "item_at", "via",
        )
    ]


def cluster_page(viewer, cluster_id: int) -> ClusterPage | None:
    """A cluster the viewer may see, its members (nearest the centroid first), history and open proposals."""
    cluster = (visible_clusters(viewer).select_related("owner", "claimed_by", "routed_group", "duplicate_of")
               .defer("centroid", "vector_sum").filter(pk=cluster_id).first())
    if cluster is None:
        return None
    decorate([cluster])
    members = _member_rows(ClusterMember.objects.filter(cluster=cluster).order_by("distance", "item_id")
                           [:MEMBERS_LIMIT])
    by_id = {m.item_id: m for m in members}
    representatives = [by_id[i] for i in cluster.representative_ids if i in by_id]
    events = list(ClusterEvent.objects.filter(cluster=cluster).select_related("actor")[:30])
    # Merges with a cluster closed since the re-cluster proposed them are out of date (marked so hourly).
    proposals = list(ClusterProposal.objects.filter(Q(cluster=cluster) | Q(other=cluster),
                                                    status=ProposalStatus.PENDING, cluster__is_open=True)
                     .exclude(kind=ProposalKind.MERGE, other__is_open=False)
                     .select_related("cluster", "other").defer("cluster__centroid", "cluster__vector_sum",
                                                               "other__centroid", "other__vector_sum"))
    tags = list(Tag.objects.filter(pk__in=cluster.tag_ids)) if cluster.tag_ids else []
    return ClusterPage(cluster=cluster, members=members, representatives=representatives, events=events,
                       proposals=proposals, tags=tags)


def assignable_users() -> list:
    """Moderators and domain experts, for the assign and route pickers."""
    return list(
        get_user_model().objects.filter(is_active=True, groups__name__in=[roles.MODERATOR, roles.DOMAIN_EXPERT])
        .distinct().order_by("username").only("pk", "username")
    )


def filter_choices() -> dict[str, list]:
    """Environments and model versions present in open clusters (for the filter pickers); cached for a minute
    (the look-up scans the open clusters), read directly when the cache (Redis) is unreachable."""
    try:
        cached = cache.get("triage:filter-choices")
    except Exception:  # noqa: BLE001 (Redis down: the page must still work)
        cached = None
    if cached is not None:
        return cached
    choices = _filter_choices()
    try:
        cache.set("triage:filter-choices", choices, 60)
    except Exception:  # noqa: BLE001, S110
        pass
    return choices


def _filter_choices() -> dict[str, list]:
    with connection.cursor() as cursor:
        cursor.execute(
            """SELECT 'env', v FROM (SELECT DISTINCT unnest(environments) AS v FROM triage_cluster WHERE is_open) e
               UNION ALL
               SELECT 'model', v FROM (SELECT DISTINCT unnest(model_versions) AS v FROM triage_cluster
                                       WHERE is_open) m"""
        )
        rows = cursor.fetchall()
    return {"environments": sorted(v for k, v in rows if k == "env"),
            "model_versions": sorted(v for k, v in rows if k == "model")}


def guidance_for_items(item_ids: Iterable[int]) -> dict[int, str]:
    """For the recall API: item id -> the guidance note of the cluster the item is in (items in clusters without a
    note are left out). One query."""
    ids = [int(i) for i in item_ids]
    if not ids:
        return {}
    # Plain SQL: it runs on every recall API request, where building it through the ORM cost more than running it.
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT m.item_id, c.guidance FROM {ClusterMember._meta.db_table} m"  # noqa: S608 (model tables)
            f" JOIN {Cluster._meta.db_table} c ON c.id = m.cluster_id"
            " WHERE m.item_id = ANY(%s::bigint[]) AND c.guidance <> ''",
            [ids],
        )
        return dict(cursor.fetchall())


def recall_guidance(examples: list, candidates: list) -> list[dict]:
    """The recall API's guidance provider (``annotations.recall.api.GUIDANCE_PROVIDERS``): the guidance note of each
    problem cluster the returned examples (then the other ranked candidates) belong to, once per cluster. The API
    passes only cases inside the token's sources and above its similarity floor, and nothing else is read here, so
    a cluster's note reaches an app only through a case that app may see."""
    cases = [*examples, *candidates]
    notes_by_item = guidance_for_items(case.item.pk for case in cases)
    notes: list[dict] = []
    seen: set[str] = set()
    for case in cases:
        text = notes_by_item.get(case.item.pk, "").strip()
        if text and text not in seen:
            seen.add(text)
            notes.append({"kind": "cluster_guidance", "text": text, "similarity": round(case.similarity, 4),
                          "conversation_id": case.item.conversation_id, "turn_id": case.item.turn_id})
    return notes


def queue_cluster_choices() -> list[tuple[str, str]]:
    """Open clusters, highest priority first, for building a review queue from one (``annotations.reply_sources``)."""
    clusters = Cluster.objects.filter(is_open=True).order_by("-priority", "-id").only("pk", "title", "size")[:300]
    return [(str(c.pk), f"#{c.pk} {c.title} ({c.size})") for c in clusters]


def queue_cluster_turns_sql(value: str) -> tuple[str, list]:
    """The replies a cluster's feedback is about: ``SELECT turn_id, conversation_id`` of its members' items."""
    try:
        cluster_id = int(value)
    except ValueError:
        raise ValueError(f"{value!r} is not a cluster id") from None
    member = connection.ops.quote_name(ClusterMember._meta.db_table)
    item = connection.ops.quote_name(ClusterMember._meta.get_field("item").related_model._meta.db_table)
    return (
        f"SELECT DISTINCT i.turn_id, i.conversation_id FROM {member} m JOIN {item} i ON i.id = m.item_id "  # noqa: S608
        "WHERE m.cluster_id = %s",
        [cluster_id],
    )
