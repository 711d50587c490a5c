"""Insights views: the analytics dashboard (+ CSV of each chart, reviewer-tag spans), bulk session tagging from the
session list, tag chips for list rows, and saved views.

Everyone logged in reads (LoginRequiredMiddleware); tagging is for product analysts and admins, checked here and
again in the services.
"""

from __future__ import annotations

import hashlib
import json

from django.contrib import messages
from django.core.cache import cache
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, QueryDict
from django.shortcuts import get_object_or_404, redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import trigger_client_event

from annotations.insights import charts, selectors
from annotations.insights.forms import BulkTagForm, ChipsForm, DashboardFilterForm, SaveViewForm, SpanFilterForm
from annotations.insights.stats import min_sample
from feedbackhub.http import HtmxHttpRequest
from sessions.forms import ConversationFilterForm
from sessions.models import SavedView
from sessions.selectors import FilterChoices, conversation_filter_choices
from sessions.tagging import selectors as tagging_selectors
from sessions.tagging import services as tagging

# --- Dashboard -------------------------------------------------------------------------------------------------------


#: How long a rendered dashboard body is reused for the same filters. Its key also names the rollup's last refresh,
#: so new import figures show at once; reviewer-tag counts (read live) may lag by up to this much.
BODY_CACHE_SECONDS = 60


def _filter_form(request: HttpRequest, freshness: selectors.Freshness | None = None) -> DashboardFilterForm:
    """The filter form with its drop-down options (model versions, user roles). With ``freshness`` the options are
    reused from the cache until the rollup is refreshed (they change only when imports bring new values)."""
    stamp = freshness.refreshed_at.timestamp() if freshness is not None and freshness.refreshed_at else 0
    key = f"insights:choices:{stamp}" if freshness is not None else None
    choices = cache.get(key) if key else None
    if choices is None:
        choices = conversation_filter_choices()
        if key:
            cache.set(key, choices, BODY_CACHE_SECONDS)
    return DashboardFilterForm(request.GET, model_versions=choices.model_versions, user_roles=choices.user_roles)


def _dashboard_data(form: DashboardFilterForm) -> selectors.Dashboard:
    """The dashboard's figures for a valid form (missing dates fit the data, at most DEFAULT_DAYS)."""
    first_day, last_day = selectors.rollup_day_range()
    return selectors.dashboard_compared(form.filters(last_day=last_day or timezone.now().date(), first_day=first_day))


def _body_context(data: selectors.Dashboard) -> dict:
    chart_list = charts.all_charts(data)
    f = data.filters
    return {
        "data": data,
        "charts": chart_list,
        "charts_json": [c.as_json() for c in chart_list if not c.is_empty],
        "compare_rows": charts.compare_table(data) if f.model_a and f.model_b else [],
        "rates": [
            (label, unit, data.totals.rate(name), charts.interval_note(data.totals, name))
            for name, (label, unit) in selectors.RATES.items()
        ],
        "min_sample": min_sample(),
    }


@require_GET
def dashboard(request: HtmxHttpRequest) -> HttpResponse:
    """The dashboard. Its body (figures, charts, tables) depends only on the filters and the rollup, so it is
    rendered once per filter set and rollup refresh and reused for BODY_CACHE_SECONDS."""
    freshness = selectors.rollup_freshness()
    form = _filter_form(request, freshness)
    body = ""
    if form.is_valid():
        raw = json.dumps([sorted(form.cleaned_data.items(), key=str), str(freshness.refreshed_at)], default=str)
        key = f"insights:dashboard:{hashlib.sha256(raw.encode()).hexdigest()}"
        body = cache.get(key)
        if body is None:
            body = render_to_string("insights/dashboard.html#body", _body_context(_dashboard_data(form)), request)
            cache.set(key, body, BODY_CACHE_SECONDS)
    context = {"nav": "insights", "form": form, "freshness": freshness, "body": body}
    return render(request, "insights/dashboard.html", context)


@require_GET
def chart_csv(request: HttpRequest, chart_id: str) -> HttpResponse:
    """One chart's data as CSV (the same rows as its table), for the same filters as the dashboard URL."""
    form = _filter_form(request)
    if not form.is_valid():
        return HttpResponseBadRequest("; ".join(form.error_messages()), content_type="text/plain; charset=utf-8")
    data = _dashboard_data(form)
    chart = next((c for c in charts.all_charts(data) if c.id == chart_id), None)
    if chart is None:
        return HttpResponse(f"No chart called {chart_id!r}.", status=404, content_type="text/plain; charset=utf-8")
    f = data.filters
    name = f"{chart.id}_{f.date_from.isoformat()}_{f.date_to.isoformat()}.csv"
    response = HttpResponse(charts.chart_csv(chart), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    return response


@require_GET
def spans(request: HttpRequest) -> HttpResponse:
    """The spans behind a reviewer-tag point: tagged annotations on sessions of the period, linked into the review
    workspace."""
    form = SpanFilterForm(request.GET)
    rows: list[selectors.SpanRow] = []
    tag_name = ""
    if form.is_valid():
        tag_name = selectors.tag_name(form.cleaned_data["tag"])
        rows = selectors.reviewer_tag_spans(filters=form.filters(), tag_id=form.cleaned_data["tag"])
    return render(request, "insights/spans.html", {
        "nav": "insights", "form": form, "rows": rows, "tag_name": tag_name, "back": reverse("insights:dashboard"),
    })


# --- Session tags on the list ----------------------------------------------------------------------------------------


def _list_filters(params: QueryDict):  # noqa: ANN202
    """The session list's filters from ``params`` (its own form), or raise ValidationError naming the field."""
    form = ConversationFilterForm(params, choices=FilterChoices())
    if not form.is_valid():
        raise ValidationError("; ".join(form.error_messages()))
    return form.filters()


def _require_tagger(request: HttpRequest) -> None:
    if not tagging.can_tag(request.user):
        raise PermissionDenied("Only product analysts and admins tag conversations.")


@require_GET
def bulk_panel(request: HtmxHttpRequest) -> HttpResponse:
    """The bulk-tag panel for the list filter in the query string, with the number of matches counted now (on
    demand, so list pages never count)."""
    _require_tagger(request)
    try:
        filters = _list_filters(request.GET)
    except ValidationError as exc:
        return render(request, "insights/_bulk_panel.html", {"error": " ".join(exc.messages)}, status=400)
    context = {
        "count": tagging_selectors.count_matching(filters),
        "filters_active": filters.active,
        "tags": tagging_selectors.conversation_tags(),
        "query": tagging.view_query_string(request.GET),
        "form": BulkTagForm(),
    }
    return render(request, "insights/_bulk_panel.html", context)


@require_POST
def bulk_apply(request: HtmxHttpRequest) -> HttpResponse:
    """Add or remove a tag on every match of the list filter (query string) or on the selected rows (``ids``)."""
    _require_tagger(request)
    data = request.POST.copy()
    data["ids"] = " ".join(request.POST.getlist("ids"))
    op = request.POST.get("op", "")
    action, _, scope = op.partition(":")
    data["action"], data["scope"] = action, scope
    form = BulkTagForm(data)
    context: dict = {
        "tags": tagging_selectors.conversation_tags(),
        "query": tagging.view_query_string(request.GET),
        "form": form,
    }
    if not form.is_valid():
        errors = [f"{form.fields[k].label or k}: {e}" if k != "__all__" else str(e)
                  for k, errs in form.errors.items() for e in errs]
        return render(request, "insights/_bulk_panel.html", {**context, "error": " ".join(errors)}, status=400)
    try:
        tag = tagging.conversation_tag_get_or_create(actor=request.user, name=form.cleaned_data["tag"])
        remove = form.cleaned_data["action"] == "remove"
        if form.cleaned_data["scope"] == "selected":
            result = tagging.conversation_tag_apply_ids(
                actor=request.user, tag=tag, conversation_ids=form.cleaned_data["ids"], remove=remove
            )
        else:
            filters = _list_filters(request.GET)
            apply = tagging.conversation_tag_remove_matching if remove else tagging.conversation_tag_apply_matching
            result = apply(actor=request.user, tag=tag, filters=filters)
    except ValidationError as exc:
        return render(request, "insights/_bulk_panel.html", {**context, "error": " ".join(exc.messages)}, status=400)
    response = render(request, "insights/_bulk_panel.html", {**context, "result": result,
                                                             "scope": form.cleaned_data["scope"]})
    # The rows shown reload their chips.
    return trigger_client_event(response, "sessionTagsChanged")


@require_GET
def chips(request: HttpRequest) -> HttpResponse:
    """Tag chips for the list rows ``ids`` as out-of-band fragments (the list itself runs no extra query)."""
    form = ChipsForm(request.GET)
    if not form.is_valid():
        return HttpResponseBadRequest(" ".join(form.errors.get("ids", [])))
    ids = form.cleaned_data["ids"]
    by_id = tagging_selectors.conversation_tags_for(ids)
    return render(request, "insights/_chips.html", {"rows": [(pk, by_id.get(pk, [])) for pk in ids]})


# --- Saved views -----------------------------------------------------------------------------------------------------


@require_GET
def view_list(request: HttpRequest) -> HttpResponse:
    views = tagging_selectors.saved_views_for(request.user)
    rows = [(v, QueryDict(v.query_string)) for v in views]
    return render(request, "insights/views.html", {"nav": "views", "rows": rows})


@require_POST
def view_save(request: HtmxHttpRequest) -> HttpResponse:
    form = SaveViewForm(request.POST)
    params = QueryDict(request.POST.get("query", ""))
    if not form.is_valid():
        errors = [e for errs in form.errors.values() for e in errs]
        return render(request, "insights/_view_saved.html", {"error": " ".join(errors)}, status=400)
    try:
        view = tagging.saved_view_create(
            actor=request.user, name=form.cleaned_data["name"], params=params, shared=form.cleaned_data["shared"]
        )
    except ValidationError as exc:
        return render(request, "insights/_view_saved.html", {"error": " ".join(exc.messages)}, status=400)
    if not request.htmx:
        messages.success(request, f"Saved view “{view.name}”.")
        return redirect("insights:views")
    return render(request, "insights/_view_saved.html", {"view": view})


@require_GET
def view_open(request: HttpRequest, slug: str) -> HttpResponse:
    """A saved view's shareable URL: redirects to the session list with its filter. Anyone logged in may open
    a link they were given."""
    view = get_object_or_404(SavedView, slug=slug)
    return redirect(view.list_url)


@require_POST
def view_delete(request: HttpRequest, slug: str) -> HttpResponse:
    view = get_object_or_404(SavedView, slug=slug)
    tagging.saved_view_delete(actor=request.user, view=view)
    messages.success(request, f"Deleted view “{view.name}”.")
    return redirect("insights:views")
