"""Browsing conversation logs: the conversation list (filters, keyset pages) and one conversation's trail.

Every logged-in role may browse (LoginRequiredMiddleware turns anonymous visitors to the login page).
"""

from __future__ import annotations

from django.conf import settings
from django.http import HttpResponse
from django.shortcuts import render
from django.urls import NoReverseMatch, reverse
from django.views.decorators.http import require_GET
from django.views.decorators.vary import vary_on_headers

from feedbackhub.http import HtmxHttpRequest
from sessions import selectors
from sessions.forms import ConversationFilterForm
from sessions.tagging import services as tagging


@require_GET
@vary_on_headers("HX-Request")
def conversation_list(request: HtmxHttpRequest) -> HttpResponse:
    """The conversation list. htmx requests (filter changes, page links) get only the ``results`` fragment; the
    URL carries every filter and the page position, so it can be bookmarked, shared and reloaded."""
    partial = bool(request.htmx) and not request.htmx.history_restore_request
    # The fragment does not show the form, so it needs no drop-down options.
    choices = selectors.FilterChoices() if partial else selectors.conversation_filter_choices()
    form = ConversationFilterForm(request.GET, choices=choices)
    page = None
    if form.is_valid():
        page = selectors.conversation_list(
            filters=form.filters(), after=form.cleaned_data["after"], before=form.cleaned_data["before"]
        )
    context = {
        "nav": "conversations",
        "form": form,
        "page": page,
        "filters_active": form.is_valid() and form.filters().active,
        "paged": bool(request.GET.get("after") or request.GET.get("before")),
        # Product analysts and admins get a checkbox per row for bulk tagging.
        "can_tag": tagging.can_tag(request.user),
        "live_minutes": settings.LIVE_MINUTES,
    }
    return render(request, "sessions/list.html#results" if partial else "sessions/list.html", context)


@require_GET
def conversation_detail(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    """A conversation's trail: its metadata, then each turn with its system context, output and end-user feedback."""
    trail = selectors.conversation_trail(pk=pk)
    try:
        # The review workspace lives in the annotations app; link to it when it is installed.
        review_url = reverse("annotations:review", args=[pk])
    except NoReverseMatch:
        review_url = ""
    context = {
        "nav": "conversations",
        "trail": trail,
        "conversation": trail.conversation,
        "review_url": review_url,
    }
    return render(request, "sessions/detail.html", context)
