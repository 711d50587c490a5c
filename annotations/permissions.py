"""Who may do what in the review workspace. Services call these and raise ``PermissionDenied``; views map that to 403.

- moderators and domain experts annotate (comment, tag, suggest, reply, resolve/reopen);
- product analysts (and anyone else logged in) only read;
- only an author edits or deletes (and undoes the delete of) their own annotation or reply;
- only domain experts accept/reject suggestions, write the corrected reply and approve it;
- four-eyes (``REVIEW_FOUR_EYES``, on by default): the author of a correction (who created it or last changed it)
  cannot be its only approver, neither of the correction nor of a dataset example made from it.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.core.exceptions import PermissionDenied

from feedbackhub import roles

User = AbstractBaseUser | AnonymousUser


def can_annotate(user: User) -> bool:
    return roles.has_role(user, roles.MODERATOR, roles.DOMAIN_EXPERT)


def can_decide(user: User) -> bool:
    """Accept/reject suggestions, edit and approve corrections."""
    return roles.has_role(user, roles.DOMAIN_EXPERT)


def is_author(user: User, obj) -> bool:
    return user.is_authenticated and obj.author_id == user.pk


def require_annotate(user: User) -> None:
    if not can_annotate(user):
        raise PermissionDenied("Only moderators and domain experts can annotate.")


def require_decide(user: User) -> None:
    if not can_decide(user):
        raise PermissionDenied("Only domain experts can accept or reject suggestions and approve corrections.")


def require_author(user: User, obj) -> None:
    require_annotate(user)
    if not is_author(user, obj):
        raise PermissionDenied("Only the author can change or delete this.")


def four_eyes() -> bool:
    return bool(getattr(settings, "REVIEW_FOUR_EYES", True))


def is_correction_author(user: User, correction) -> bool:
    """Whether ``user`` wrote ``correction``: created it or made its last change."""
    return user.is_authenticated and user.pk in (correction.created_by_id, correction.updated_by_id)


def four_eyes_refusal(user: User, correction) -> str:
    """Why ``user`` may not approve ``correction`` (or an example made from it) under four-eyes; "" when they may."""
    if correction is None or not four_eyes() or not is_correction_author(user, correction):
        return ""
    return (
        "Four-eyes review: you wrote this corrected reply, so another domain expert must approve it "
        "(REVIEW_FOUR_EYES)."
    )


def require_second_approver(user: User, correction) -> None:
    refusal = four_eyes_refusal(user, correction)
    if refusal:
        raise PermissionDenied(refusal)


def can_read_deleted(user: User, obj) -> bool:
    """The text of a deleted annotation or reply (in its history): its author and admins only."""
    return is_author(user, obj) or roles.has_role(user, roles.ADMIN)
