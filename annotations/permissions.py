"""Who may do what in the review workspace. Services call these and raise ``PermissionDenied``; views map that to 403.

- moderators and domain experts annotate (comment, tag, suggest, reply, resolve/reopen);
- product analysts (and anyone else logged in) only read;
- only an author edits or deletes (and undoes the delete of) their own annotation or reply;
- only domain experts accept/reject suggestions, write the corrected reply and approve it.
"""

from __future__ import annotations

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


def can_read_deleted(user: User, obj) -> bool:
    """The text of a deleted annotation or reply (in its history): its author and admins only."""
    return is_author(user, obj) or roles.has_role(user, roles.ADMIN)
