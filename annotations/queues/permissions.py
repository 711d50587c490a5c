"""Who may do what with review queues.

- moderators, domain experts and admins build queues and watch their progress and agreement;
- a queue's reviewers are the people it names plus everyone holding its reviewer role; only they work its items;
- domain experts adjudicate (choose the gold annotation where reviewers disagree).
"""

from __future__ import annotations

from django.core.exceptions import PermissionDenied

from annotations import permissions as review_perms
from feedbackhub import roles


def can_manage(user) -> bool:  # noqa: ANN001
    return roles.has_role(user, roles.MODERATOR, roles.DOMAIN_EXPERT, roles.ADMIN)


def require_manage(user) -> None:  # noqa: ANN001
    if not can_manage(user):
        raise PermissionDenied("Only moderators, domain experts and admins build review queues.")


def is_reviewer(queue, user) -> bool:  # noqa: ANN001
    """Named by the queue or holding its role. A queue read with ``named_reviewer`` annotated (``with_reviewer``)
    answers without a query."""
    if not user.is_authenticated or not review_perms.can_annotate(user):
        return False
    if queue.reviewer_role and queue.reviewer_role in roles.user_roles(user):
        return True
    named = getattr(queue, "named_reviewer", None)
    return named if named is not None else queue.reviewers.filter(pk=user.pk).exists()


def require_reviewer(queue, user) -> None:  # noqa: ANN001
    if not is_reviewer(queue, user):
        raise PermissionDenied("You are not a reviewer of this queue.")


def can_adjudicate(user) -> bool:  # noqa: ANN001
    return review_perms.can_decide(user)


def require_adjudicate(user) -> None:  # noqa: ANN001
    if not can_adjudicate(user):
        raise PermissionDenied("Only domain experts adjudicate.")
