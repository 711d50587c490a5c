"""The authentication backend: Django's ModelBackend, plus the user's role names read in the same query as the user.

Every request of a logged-in user loads the user from the session, and almost every page then asks for its roles
(``feedbackhub.roles``): reading both at once (an ``ArraySubquery`` of the group names) saves a query per request.
Roles are read fresh on every request, so a change of groups applies to the next request.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.models import Group
from django.contrib.postgres.expressions import ArraySubquery
from django.db.models import OuterRef
from django.http import HttpRequest

from feedbackhub import roles


class RolesModelBackend(ModelBackend):
    def get_user(self, user_id):  # noqa: ANN001, ANN201 (Django's signature)
        group_names = Group.objects.filter(user=OuterRef("pk")).values("name")
        user = (
            get_user_model()._default_manager.annotate(role_names=ArraySubquery(group_names)).filter(pk=user_id).first()
        )
        if user is None or not self.user_can_authenticate(user):
            return None
        roles.remember(user, user.role_names)
        return user


def client_ip(request: HttpRequest) -> str | None:
    """The client's address for the login lock-out: REMOTE_ADDR, or behind a proxy (BEHIND_PROXY) the last
    X-Forwarded-For entry, the one the proxy itself added (earlier entries are whatever the client sent)."""
    if settings.BEHIND_PROXY:
        forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")[-1].strip()
        if forwarded:
            return forwarded[:45]
    return request.META.get("REMOTE_ADDR")
