"""Who may do what with datasets. Services call the ``require_*`` helpers; views map ``PermissionDenied`` to 403.

- domain experts curate: create datasets, approve/reject/annotate examples, cut versions;
- moderators (and domain experts) propose approved corrections as examples;
- product analysts and every other role read datasets and download exports.
"""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.core.exceptions import PermissionDenied

from feedbackhub import roles

User = AbstractBaseUser | AnonymousUser


def can_read(user: User) -> bool:
    return bool(roles.user_roles(user))


def can_propose(user: User) -> bool:
    return roles.has_role(user, roles.MODERATOR, roles.DOMAIN_EXPERT)


def can_curate(user: User) -> bool:
    return roles.has_role(user, roles.DOMAIN_EXPERT)


def require_read(user: User) -> None:
    if not can_read(user):
        raise PermissionDenied("Datasets are for moderators, domain experts and product analysts.")


def require_propose(user: User) -> None:
    if not can_propose(user):
        raise PermissionDenied("Only moderators and domain experts can add corrections to a dataset.")


def require_curate(user: User) -> None:
    if not can_curate(user):
        raise PermissionDenied("Only domain experts can create datasets, review examples and cut versions.")


def can_export_unscrubbed(user: User) -> bool:
    return bool(getattr(user, "is_superuser", False))


def require_unscrubbed(user: User) -> None:
    if not can_export_unscrubbed(user):
        raise PermissionDenied("Only an admin can export without scrubbing private data.")
