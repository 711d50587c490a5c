"""Who may do what in triage, each question answered once: the views, the templates (through the context), the
selectors and the actions all ask here.

- moderators and admins triage: see every cluster, claim, route, assign, merge, move, tag and decide proposals;
- domain experts use triage for the clusters routed to a group of theirs or owned by them: they may mark those
  corrected or closed and write guidance (``actions``).
"""

from __future__ import annotations

from django.core.exceptions import PermissionDenied
from django.db.models import Q, QuerySet

from annotations.triage.models import (
    Cluster,
    Status,
)
from feedbackhub import roles


def can_use_triage(user) -> bool:
    """Who may open the triage pages at all (which clusters they see there: ``can_see`` / ``visible_clusters``)."""
    return roles.has_role(user, roles.MODERATOR, roles.ADMIN, roles.DOMAIN_EXPERT)


def can_triage(user) -> bool:
    return roles.has_role(user, roles.MODERATOR, roles.ADMIN)


def can_see(user, cluster: Cluster) -> bool:
    """Moderators see every cluster; domain experts the ones routed to a group of theirs or owned by them (the same
    rule as ``visible_clusters``, for one cluster already in hand)."""
    if can_triage(user):
        return True
    if not roles.has_role(user, roles.DOMAIN_EXPERT):
        return False
    if cluster.owner_id == user.pk:
        return True
    return cluster.status == Status.NEEDS_EXPERT and cluster.routed_group is not None and (
        cluster.routed_group.name in roles.user_roles(user))


def require_triage(user) -> None:
    if not can_triage(user):
        raise PermissionDenied("Only moderators can do this in the triage queue.")


def visible_clusters(viewer) -> QuerySet[Cluster]:
    """Every cluster for moderators; for domain experts the ones routed to their groups or owned by them."""
    qs = Cluster.objects.all()
    if can_triage(viewer):
        return qs
    if not roles.has_role(viewer, roles.DOMAIN_EXPERT):
        return qs.none()
    groups = list(roles.user_roles(viewer))
    return qs.filter(Q(owner_id=viewer.pk) | Q(status=Status.NEEDS_EXPERT, routed_group__name__in=groups))
