from django.contrib.auth.decorators import login_not_required
from django.http import HttpRequest, JsonResponse
from django.shortcuts import redirect
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from feedbackhub import health


@login_not_required
@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    """JSON state of database, Redis, worker and beat; 503 when the database or Redis is down."""
    state = health.check()
    ok = state["database"]["ok"] and state["redis"]["ok"]
    return JsonResponse({"ok": ok, **state}, status=200 if ok else 503)


def home(request: HttpRequest):
    return redirect("conversations:list")
