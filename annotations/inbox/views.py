"""The inbox page, the header's unread count (polled), marking items read, and the ``@`` autocomplete's users.

Every query is scoped to the logged-in user: another user's item answers 404, as if it did not exist.
"""

from __future__ import annotations

from django.contrib.auth.decorators import login_not_required
from django.core.exceptions import ValidationError
from django.http import Http404, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_POST

from annotations.inbox import forms, selectors, services
from feedbackhub.http import HtmxHttpRequest

TEMPLATE = "inbox/inbox.html"


def header_context(request: HtmxHttpRequest, *, on_inbox: bool | None = None) -> dict:
    if on_inbox is None:  # the poll: is the page polling the inbox itself?
        current = request.htmx.current_url_abs_path if request.htmx else request.path
        on_inbox = (current or "").split("?")[0] == reverse("inbox:page")
    return selectors.header(request.user, on_inbox=on_inbox)


@require_GET
def inbox(request: HtmxHttpRequest) -> HttpResponse:
    form = forms.PageForm(request.GET)
    if not form.is_valid():
        return render(request, TEMPLATE, {"errors": form.errors, "nav": "inbox"}, status=400)
    page = selectors.inbox_page(request.user, page=form.cleaned_data["page"])
    return render(request, TEMPLATE, {"page": page, "nav": "inbox"})


#: htmx stops polling on this status.
STOP_POLLING = 286


@login_not_required
@require_GET
def count(request: HtmxHttpRequest) -> HttpResponse:
    """Polled by the header of every page: the inbox link with its unread count, 204 when it is still the count the
    page shows (``seen``). Once logged out (in another tab, or
    the session expired) the poll stops instead of being sent to the login page, whose HTML it would swap in."""
    if not request.user.is_authenticated:
        return HttpResponse(status=STOP_POLLING)
    context = header_context(request)
    # Unchanged: nothing to swap (so no page script reacts to a swap every few seconds).
    status_only = forms.parse_seen(request.GET) == context["unread"]
    response = HttpResponse(status=204) if status_only else render(request, f"{TEMPLATE}#header", context)
    response["Cache-Control"] = "no-store"
    return response


@require_GET
def users(request: HtmxHttpRequest) -> JsonResponse:
    """Active users matching the prefix typed after ``@`` (not the one typing: mentioning oneself tells nobody)."""
    form = forms.UserQueryForm(request.GET)
    if not form.is_valid():
        return JsonResponse({"errors": form.errors.get_json_data()}, status=400)
    found = selectors.user_suggestions(form.cleaned_data["q"], exclude_id=request.user.pk)
    return JsonResponse({"users": found})


@require_GET
def open_item(request: HtmxHttpRequest, notification_id: int) -> HttpResponse:
    """Follow an item's link: it counts as read once opened."""
    try:
        item = services.notification_read(actor=request.user, notification_id=notification_id)
    except ValidationError:
        raise Http404("Not in your inbox.") from None
    if not url_has_allowed_host_and_scheme(item.url, allowed_hosts=None):
        raise Http404("This item has no link.")
    return redirect(item.url)


def _answer(request: HtmxHttpRequest, fragment: str, context: dict) -> HttpResponse:
    """htmx: the changed fragment with the header's count out of band; a plain form post: back to the inbox."""
    if not request.htmx:
        return redirect("inbox:page")
    return render(request, f"{TEMPLATE}#{fragment}", {**context, **header_context(request, on_inbox=True)})


@require_POST
def read(request: HtmxHttpRequest, notification_id: int) -> HttpResponse:
    form = forms.ReadForm(request.POST)
    if not form.is_valid():
        return render(request, f"{TEMPLATE}#errors", {"errors": form.errors}, status=400)
    try:
        item = services.notification_read(
            actor=request.user, notification_id=notification_id, read=not form.cleaned_data["unread"]
        )
    except ValidationError:
        raise Http404("Not in your inbox.") from None
    return _answer(request, "item_changed", {"item": item})


@require_POST
def read_all(request: HtmxHttpRequest) -> HttpResponse:
    services.notifications_read_all(actor=request.user)
    return _answer(request, "list_changed", {"page": selectors.inbox_page(request.user)})
