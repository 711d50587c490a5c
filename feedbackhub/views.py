import hmac

from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect
from django.templatetags.static import static
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from feedbackhub import health, metrics


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


@login_not_required
@never_cache
@require_GET
def healthz_live(request: HttpRequest) -> JsonResponse:
    """Liveness: the process answers (no dependency is asked; a restart would not fix a database outage)."""
    return JsonResponse({"status": "ok"})


@login_not_required
@never_cache
@require_GET
def healthz_ready(request: HttpRequest) -> JsonResponse:
    """Readiness: 503 until the database is reachable, migrated and has pgvector, and Redis answers (a load
    balancer sends no traffic meanwhile). Details for staff and HEALTH_TOKEN holders, as on /healthz."""
    state = health.readiness()
    ok = all(part["ok"] for part in state.values())
    body = {"status": "ready" if ok else "unavailable"}
    if _may_see_health_details(request):
        body.update(state)
    return JsonResponse(body, status=200 if ok else 503)


@login_not_required
@never_cache
@require_GET
def metrics_view(request: HttpRequest) -> HttpResponse:
    """Prometheus metrics (feedbackhub/metrics.py), for staff and HEALTH_TOKEN holders like /healthz's details."""
    if not _may_see_health_details(request):
        return JsonResponse({"error": "metrics need a staff login or the health token"}, status=403)
    return HttpResponse(metrics.exposition(), content_type="text/plain; version=0.0.4; charset=utf-8")


@login_not_required
@require_GET
def favicon(request: HttpRequest) -> HttpResponse:
    """Browsers ask for /favicon.ico on pages that name no icon (the admin's): the icon's (hashed) static URL."""
    return redirect(static("favicon.svg"), permanent=True)


def home(request: HttpRequest):
    return redirect("conversations:list")
