"""The periodic re-cluster: merge and split proposals for moderators, never reshuffling members by itself, and the
moderators' decisions on them."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from annotations.triage import clustering
from annotations.triage.actions import clusters_merge, members_move
from annotations.triage.conf import setting
from annotations.triage.job import member_vectors, refresh_derived, write_clusters
from annotations.triage.job_sql import MERGE_SQL, try_lock
from annotations.triage.models import (
    Cluster,
    ClusterMember,
    ClusterProposal,
    ProposalKind,
    ProposalStatus,
)
from annotations.triage.permissions import require_triage


@dataclass
class ReclusterResult:
    merges: int = 0
    splits: int = 0
    stale: int = 0
    locked_out: bool = False
    retitled: list[int] = field(default_factory=list)


def triage_recluster(*, split_min_size: int = 8, max_split_checks: int = 50) -> ReclusterResult:
    """Propose merges (open clusters whose centroids are within TRIAGE_MERGE_DISTANCE) and splits (a cluster whose
    two main parts are further apart than TRIAGE_SPLIT_DISTANCE); refresh titles. Changes no membership."""
    result = ReclusterResult()
    with transaction.atomic():
        if not try_lock():
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
            item_ids, vectors = member_vectors(cluster_id)
            proposal = _split_proposal(item_ids, vectors, split_threshold, split_min_size // 2)
            if proposal is not None:
                part, distance = proposal
                ClusterProposal.objects.create(kind=ProposalKind.SPLIT, cluster_id=cluster_id, item_ids=part,
                                               score=distance)
                result.splits += 1
        clusters = list(Cluster.objects.select_for_update().filter(is_open=True).order_by("-priority", "-id")[:200])
        refresh_derived(clusters, force_title=True)
        write_clusters(clusters, timezone.now())
        result.retitled = [c.pk for c in clusters]
    return result


def _split_proposal(item_ids: list[int], vectors: np.ndarray, threshold: float,
                    min_part: int) -> tuple[list[int], float] | None:
    """The smaller of a cluster's two main parts when they are further apart than ``threshold``."""
    if len(item_ids) < 2 * max(min_part, 1):
        return None
    labels = clustering.split_in_two(vectors)
    parts = [np.flatnonzero(labels == k) for k in (0, 1)]
    if min(len(p) for p in parts) < min_part:
        return None
    a, b = (clustering.normalise(vectors[p].sum(axis=0)[None, :])[0] for p in parts)
    distance = float(1.0 - a @ b)
    if distance <= threshold:
        return None
    smaller = min(parts, key=len)
    return sorted(item_ids[i] for i in smaller), distance


@transaction.atomic
def proposal_decide(*, actor, proposal_id: int, accept: bool) -> ClusterProposal:
    """Accept (merge, or split the items out into a new cluster) or reject a re-cluster proposal."""
    require_triage(actor)
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
