"""Reviewer-facing recall: the semantic search page and the "Similar past cases" panels of the review workspace.

Every logged-in role may read them (LoginRequiredMiddleware sends anonymous visitors to the login page). The
panels are fragments loaded by htmx when opened; they exclude the turn's (or annotation's) own items.
"""

from __future__ import annotations

from django.http import HttpResponse
from django.shortcuts import get_object_or_404, render
from django.views.decorators.http import require_GET
from django.views.decorators.vary import vary_on_headers

from annotations.models import Annotation
from annotations.recall import querying, selectors
from annotations.recall.cases import cases_for, visible_to
from annotations.recall.forms import MAX_RESULTS, RecallSearchForm
from feedbackhub.http import HtmxHttpRequest
from sessions import selectors as session_selectors
from sessions.models import Turn

PANEL_K = 6


@require_GET
@vary_on_headers("HX-Request")
def search(request: HtmxHttpRequest) -> HttpResponse:
    """/recall/search/?q=...: feedback similar to free text across all sessions. htmx requests (the form's
    submit and changes) get only the ``results`` fragment; the URL carries the text and every filter."""
    partial = bool(request.htmx) and not request.htmx.history_restore_request
    choices = session_selectors.FilterChoices() if partial else session_selectors.conversation_filter_choices()
    form = RecallSearchForm(request.GET, choices=choices)
    cases = None
    if form.is_valid() and form.cleaned_data["q"].strip():
        _, similar = querying.similar_to_query(
            text=form.cleaned_data["q"].strip(), k=MAX_RESULTS, filters=form.filters()
        )
        cases = cases_for(visible_to(request.user, similar))
    context = {"nav": "recall", "form": form, "cases": cases}
    return render(request, "recall/search.html#results" if partial else "recall/search.html", context)


@require_GET
def similar_to_turn(request: HtmxHttpRequest, turn_id: int) -> HttpResponse:
    """The panel beside a model reply: feedback on other replies similar to this exchange."""
    turn = get_object_or_404(Turn.objects.only("pk", "conversation_id", "position", "content"), pk=turn_id)
    similar = querying.similar_to_turn(turn=turn, k=PANEL_K)
    return render(request, "recall/panel.html", {"cases": cases_for(visible_to(request.user, similar)),
                                                 "scope": "reply"})


@require_GET
def similar_to_annotation(request: HtmxHttpRequest, annotation_id: int) -> HttpResponse:
    """The panel of an annotation card: items similar to the annotation's own item (itself excluded)."""
    annotation = get_object_or_404(Annotation.objects.only("pk", "turn_id"), pk=annotation_id, deleted_at=None)
    item_id = selectors.item_id_of_annotation(annotation.pk)
    if item_id is None:
        return render(request, "recall/panel.html", {"cases": [], "scope": "annotation", "pending": True})
    similar = selectors.similar_to_item(item_id=item_id, k=PANEL_K)
    similar = [s for s in similar if s.item.pk != item_id]
    return render(request, "recall/panel.html", {"cases": cases_for(visible_to(request.user, similar)),
                                                 "scope": "annotation"})
