"""The authentication backend: Django's ModelBackend, plus the user's role names read in the same query as the user.

Every request of a logged-in user loads the user from the session, and almost every page then asks for its roles
(``feedbackhub.roles``): reading both at once saves a query per request. Roles are read fresh on every request, as
before, so a change of groups applies to the next request.
"""

from __future__ import annotations

import functools

from django.contrib.auth import get_user_model
from django.contrib.auth.backends import ModelBackend

from feedbackhub import roles


@functools.cache
def _user_sql() -> str:
    """The user row and an array of their group names. Plain SQL: it runs on every request, and building it through
    the ORM (an aggregate over the groups join) cost more CPU than running it."""
    model = get_user_model()
    groups = model._meta.get_field("groups")
    through = groups.remote_field.through._meta.db_table
    group_table = groups.related_model._meta.db_table
    return f"""
        SELECT u.*, ARRAY(SELECT g.name FROM {through} ug JOIN {group_table} g ON g.id = ug.{groups.m2m_reverse_name()}
                          WHERE ug.{groups.m2m_column_name()} = u.{model._meta.pk.column}) AS role_names
        FROM {model._meta.db_table} u WHERE u.{model._meta.pk.column} = %s
    """  # noqa: S608 (table and column names from the model)


class RolesModelBackend(ModelBackend):
    def get_user(self, user_id):  # noqa: ANN001, ANN201 (Django's signature)
        model = get_user_model()
        found = list(model._default_manager.raw(_user_sql(), [user_id]))
        if not found:
            return None
        user = found[0]
        if not self.user_can_authenticate(user):
            return None
        roles.remember(user, user.role_names)
        return user
