from django.http import HttpRequest

from feedbackhub import roles as role_rules


def roles(request: HttpRequest) -> dict:
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {"user_roles": frozenset(), "can_import": False}
    return {"user_roles": role_rules.user_roles(user), "can_import": role_rules.can_import(user)}
