"""Roles are Django groups. Permissions are checked with these helpers in views and services."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser

MODERATOR = "moderator"
DOMAIN_EXPERT = "domain_expert"
PRODUCT_ANALYST = "product_analyst"
ADMIN = "admin"

ROLE_LABELS = {
    MODERATOR: "Moderator",
    DOMAIN_EXPERT: "Domain expert",
    PRODUCT_ANALYST: "Product analyst",
    ADMIN: "Admin",
}
ALL_ROLES = tuple(ROLE_LABELS)


def user_roles(user: AbstractBaseUser | AnonymousUser) -> frozenset[str]:
    """The role names of ``user``; a superuser holds every role. Cached on the user object per request."""
    if not user.is_authenticated:
        return frozenset()
    cached = getattr(user, "_feedbackhub_roles", None)
    if cached is None:
        remember(user, () if user.is_superuser else user.groups.values_list("name", flat=True))  # type: ignore[attr-defined]
        cached = user._feedbackhub_roles  # type: ignore[union-attr]
    return cached


def remember(user: AbstractBaseUser, group_names) -> None:  # noqa: ANN001
    """Record ``user``'s group names, read by the caller (the authentication backend reads them with the user), so
    ``user_roles`` needs no query of its own."""
    user._feedbackhub_roles = frozenset(ALL_ROLES) if user.is_superuser else frozenset(group_names)  # type: ignore[attr-defined]


def has_role(user: AbstractBaseUser | AnonymousUser, *roles: str) -> bool:
    return bool(user_roles(user) & set(roles))


def can_import(user: AbstractBaseUser | AnonymousUser) -> bool:
    """Importing logs is for moderators and admins."""
    return has_role(user, MODERATOR, ADMIN)
