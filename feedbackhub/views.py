import hmac

from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.http import HttpRequest, JsonResponse
from django.shortcuts import redirect
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from feedbackhub import health


def _may_see_health_details(request: HttpRequest) -> bool:
    """Staff, or a request carrying HEALTH_TOKEN (Authorization: Bearer ... or X-Health-Token)."""
    if request.user.is_authenticated and request.user.is_staff:
        return True
    expected = settings.HEALTH_TOKEN
    if not expected:
        return False
    authorization = request.headers.get("Authorization", "")
    given = authorization[7:] if authorization[:7].lower() == "bearer " else request.headers.get("X-Health-Token", "")
    return hmac.compare_digest(given.strip().encode(), expected.encode())


@login_not_required
@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    """503 when the database or Redis is down. Staff and HEALTH_TOKEN holders get every component's state (hosts,
    versions, heartbeats); anyone else only {"status": "ok"} or {"status": "unavailable"}."""
    state = health.check()
    ok = state["database"]["ok"] and state["redis"]["ok"]
    status = 200 if ok else 503
    if not _may_see_health_details(request):
        return JsonResponse({"status": "ok" if ok else "unavailable"}, status=status)
    return JsonResponse({"status": "ok" if ok else "unavailable", "ok": ok, **state}, status=status)


def home(request: HttpRequest):
    return redirect("conversations:list")
