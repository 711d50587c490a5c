"""What moderators and experts do to clusters: claim and release, status, owner, routing to experts, guidance,
merging clusters, moving members, tagging every member's reply. Each action locks the cluster row, checks
``permissions``, and records a ``ClusterEvent``."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import connection, transaction
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone

from annotations import services as review
from annotations.inbox import services as inbox
from annotations.models import Annotation, Tag
from annotations.triage import clustering
from annotations.triage.conf import setting
from annotations.triage.job import growth_cut_for_update, member_vectors, refresh_derived, severities, zero_vector
from annotations.triage.models import (
    DIMENSIONS,
    Cluster,
    ClusterEvent,
    ClusterMember,
    ClusterProposal,
    ClusterTagging,
    ProposalStatus,
    Resolution,
    Status,
)
from annotations.triage.permissions import can_see, can_triage, require_triage
from feedbackhub import roles
from sessions.models import Turn, TurnRole


def _locked(cluster_id: int, actor) -> Cluster:
    cluster = (Cluster.objects.select_for_update(of=("self",)).select_related("routed_group")
               .filter(pk=cluster_id).first())
    if cluster is None:
        raise ValidationError({"cluster": f"Cluster #{cluster_id} does not exist."})
    if not can_see(actor, cluster):
        raise PermissionDenied("This cluster is not routed to you.")
    return cluster


@contextmanager
def _one_of_many(cluster_id: int) -> Iterator[None]:
    """Inside a bulk action (one transaction): a refusal for one cluster refuses the whole action, naming the
    cluster and the reason, and the transaction's rollback undoes what was done to the clusters before it."""
    try:
        yield
    except (ValidationError, PermissionDenied) as exc:
        if isinstance(exc, ValidationError):
            reason = "; ".join(exc.messages)
        else:
            reason = str(exc) or "you may not do that"
        raise ValidationError(
            {"clusters": f"Nothing was changed: cluster #{cluster_id}: {reason}"}, code="bulk_refused"
        ) from exc


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


@transaction.atomic
def clusters_set_status(*, actor, cluster_ids: Iterable[int], status: str, resolution: str = "") -> int:
    """``cluster_set_status`` for each cluster, all or nothing."""
    count = 0
    for cluster_id in sorted(set(cluster_ids)):
        with _one_of_many(cluster_id):
            cluster_set_status(actor=actor, cluster_id=cluster_id, status=status, resolution=resolution)
        count += 1
    return count


def _user(user_id: int | None):

    if user_id in (None, ""):
        return None
    user = get_user_model().objects.filter(pk=user_id, is_active=True).first()
    if user is None:
        raise ValidationError({"owner": f"User #{user_id} does not exist."})
    return user


@transaction.atomic
def clusters_assign(*, actor, cluster_ids: Iterable[int], owner_id: int | None) -> int:
    """Set (or clear, with None) the owner of the clusters."""
    require_triage(actor)
    owner = _user(owner_id)
    count = 0
    for cluster_id in sorted(set(cluster_ids)):
        with _one_of_many(cluster_id):
            cluster = _locked(cluster_id, actor)
        cluster.owner = owner
        cluster.save()
        _event(cluster, actor, "assign", owner=owner.get_username() if owner else None)
        count += 1
    return count


@transaction.atomic
def clusters_route(*, actor, cluster_ids: Iterable[int], group_name: str = roles.DOMAIN_EXPERT,
                   assignee_id: int | None = None) -> int:
    """Route clusters to domain experts: status "needs expert", the group that should look, optionally an owner.

    Routing hands the cluster over: the claim moves to the assignee (a fresh claim of TRIAGE_CLAIM_MINUTES), or,
    routed to the group without one, is released so any expert of it can claim. A moderator's claim never stays
    behind to block the expert."""
    require_triage(actor)
    group = Group.objects.filter(name=group_name).first()
    if group is None:
        raise ValidationError({"group": f"No group named {group_name!r}."})
    assignee = _user(assignee_id)
    count = 0
    for cluster_id in sorted(set(cluster_ids)):
        with _one_of_many(cluster_id):
            cluster = _locked(cluster_id, actor)
            if cluster.status == Status.CLOSED:
                raise ValidationError("it is closed.")
        before = cluster.status
        cluster.status, cluster.routed_group = Status.NEEDS_EXPERT, group
        cluster.status_changed_at = timezone.now()
        if assignee is not None:
            cluster.owner = assignee
            cluster.claimed_by = assignee
            cluster.claim_expires_at = cluster.status_changed_at + dt.timedelta(
                minutes=int(setting("TRIAGE_CLAIM_MINUTES")))
        else:
            cluster.claimed_by, cluster.claim_expires_at = None, None
        cluster.save()
        _event(cluster, actor, "route", group=group.name, before=before,
               assignee=assignee.get_username() if assignee else None)
        inbox.notify_routed(actor=actor, cluster=cluster, assignee=assignee,
                            url=reverse("triage:cluster", args=[cluster.pk]))
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
    by_tag = severities()
    day_ago = growth_cut  # the job's cut, so its later shifts of the window stay exact
    for cluster in Cluster.objects.select_for_update().filter(pk__in=list(cluster_ids)).order_by("pk"):
        item_ids, vectors = member_vectors(cluster.pk, limit=10**9)
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
        cluster.max_severity = max((by_tag.get(t, 0) for t in cluster.tag_ids), default=0)
        cluster.last_item_at = max((r[1] for r in rows if r[1]), default=None)
        cluster.oldest_item_at = min((r[1] for r in rows if r[1]), default=None)
        refresh_derived([cluster], force_title=True)
        cluster.save()


@transaction.atomic
def clusters_merge(*, actor, cluster_ids: Iterable[int], into_id: int) -> Cluster:
    """Move every member of ``cluster_ids`` into cluster ``into_id``; the others close as duplicates of it (they
    keep their history and point at the survivor)."""
    require_triage(actor)
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
        other.size, other.negative_count, other.growth_24h = 0, 0, 0
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
    require_triage(actor)
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
        target = Cluster.objects.create(centroid=zero_vector(), vector_sum=zero_vector(), status=Status.NEW)
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

    require_triage(actor)
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
    cluster.save()
    _event(cluster, actor, "tag", tag=tag.name, annotations=created)
    return created


@transaction.atomic
def clusters_tag_members(*, actor, cluster_ids: Iterable[int], tag_id: int) -> int:
    """``cluster_tag_members`` for each cluster, all or nothing; returns the annotations created."""
    created = 0
    for cluster_id in sorted(set(cluster_ids)):
        with _one_of_many(cluster_id):
            created += cluster_tag_members(actor=actor, cluster_id=cluster_id, tag_id=tag_id)
    return created
