"""The authentication backend: Django's ModelBackend, plus the user's role names read in the same query as the user.

Every request of a logged-in user loads the user from the session, and almost every page then asks for its roles
(``feedbackhub.roles``): reading both at once saves a query per request. Roles are read fresh on every request, as
before, so a change of groups applies to the next request.
"""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.contrib.auth.backends import ModelBackend
from django.contrib.postgres.aggregates import ArrayAgg
from django.db.models import Q, Value

from feedbackhub import roles


class RolesModelBackend(ModelBackend):
    def get_user(self, user_id):  # noqa: ANN001, ANN201 (Django's signature)
        model = get_user_model()
        names = ArrayAgg("groups__name", filter=Q(groups__isnull=False), default=Value([]))
        try:
            user = model._default_manager.annotate(role_names=names).get(pk=user_id)
        except model.DoesNotExist:
            return None
        if not self.user_can_authenticate(user):
            return None
        roles.remember(user, user.role_names)
        return user
