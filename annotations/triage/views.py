"""Triage views: the queue, a cluster page, and POST actions that call one service each and redirect back.

Actions answer with a redirect (303) to where the form said (``next``, same-site paths only) and a message, so they
work as plain forms and keep the browser's history sane; service errors become an error message, not a 500.
The queue polls ``stamp`` (a cheap max(updated_at)) and reloads its rows only when the stamp changed.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBadRequest, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import trigger_client_event

from annotations.models import Tag
from annotations.triage import actions, permissions, proposals, selectors
from annotations.triage.forms import GuidanceForm, QueueFilterForm
from annotations.triage.models import Cluster, Resolution, Status
from feedbackhub import forms as id_forms
from feedbackhub import roles
from feedbackhub.http import HtmxHttpRequest

QUEUE_TEMPLATE = "triage/queue.html"
CLUSTER_TEMPLATE = "triage/cluster.html"


def _one_id(value: str | None, field: str, *, required: bool = True) -> int | None:
    if value in (None, ""):
        if required:
            raise ValidationError({field: "This field is required."})
        return None
    return id_forms.ids([value], field)[0]


def _message_of(exc: ValidationError | PermissionDenied) -> str:
    if isinstance(exc, ValidationError) and hasattr(exc, "error_dict"):
        return "; ".join(f"{field}: {' '.join(msgs)}" if field != "__all__" else " ".join(msgs)
                         for field, msgs in exc.message_dict.items())
    if isinstance(exc, ValidationError):
        return " ".join(exc.messages)
    return str(exc) or "You may not do that."


def _back(request: HttpRequest, default: str) -> HttpResponseRedirect:
    target = request.POST.get("next") or default
    if not url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()},
                                           require_https=request.is_secure()):
        target = default
    return HttpResponseRedirect(target, status=303)


def action(view: Callable) -> Callable:
    """POST only; runs the view (which returns a success message) and redirects back with it."""

    @wraps(view)
    @require_POST
    def wrapper(request: HtmxHttpRequest, *args, **kwargs) -> HttpResponse:
        default = reverse("triage:queue")
        if "cluster_id" in kwargs:
            default = reverse("triage:cluster", args=[kwargs["cluster_id"]])
        try:
            text = view(request, *args, **kwargs)
        except (ValidationError, PermissionDenied) as exc:
            messages.error(request, _message_of(exc))
            response = _back(request, default)
            response.status_code = 303
            return response
        messages.success(request, text)
        return _back(request, default)

    return wrapper


@require_GET
def queue(request: HtmxHttpRequest) -> HttpResponse:
    if not permissions.can_use_triage(request.user):
        raise PermissionDenied("The triage queue is for moderators and domain experts.")
    form = QueueFilterForm(request.GET)
    if not form.is_valid():
        return HttpResponseBadRequest("; ".join(f"{field}: {' '.join(e)}" for field, e in form.errors.items()))
    filters = form.filters()
    base = reverse("triage:queue")  # row links are built from it: no URL reversal per row
    context = {
        "nav": "triage",
        "filters": filters,
        "clusters": selectors.queue(request.user, filters, base=base),
        "stamp": selectors.changed_stamp(),
        "can_triage": permissions.can_triage(request.user),
        "statuses": Status.choices,
        "resolutions": [r for r in Resolution.choices if r[0]],
        "query": request.GET.urlencode(),
        "base": base,
    }
    if request.htmx and request.GET.get("fragment") == "rows":
        return render(request, f"{QUEUE_TEMPLATE}#rows", context)
    choices = selectors.filter_choices()
    context.update(
        tags=list(Tag.objects.filter(is_active=True).only("pk", "name").order_by("name")),
        users=selectors.assignable_users() if context["can_triage"] else [],
        choices=choices,
        environments=selectors.environment_choices(choices["environments"]),
    )
    return render(request, QUEUE_TEMPLATE, context)


@require_GET
def stamp(request: HtmxHttpRequest) -> HttpResponse:
    """200 with an ``triage-changed`` event when any cluster changed since ``since``, else 200 empty (no event)."""
    if not permissions.can_use_triage(request.user):
        raise PermissionDenied
    response = HttpResponse("")
    if selectors.changed_stamp() != request.GET.get("since", ""):
        trigger_client_event(response, "triage-changed")
    return response


@require_GET
def cluster(request: HtmxHttpRequest, cluster_id: int) -> HttpResponse:
    if not permissions.can_use_triage(request.user):
        raise PermissionDenied("The triage queue is for moderators and domain experts.")
    page = selectors.cluster_page(request.user, cluster_id)
    if page is None:
        raise Http404("No such cluster, or it is not routed to you.")
    can_triage = permissions.can_triage(request.user)
    return render(request, CLUSTER_TEMPLATE, {
        "nav": "triage",
        "page": page,
        "c": page.cluster,
        "can_triage": can_triage,
        "tags": list(Tag.objects.filter(is_active=True).only("pk", "name").order_by("name")) if can_triage else [],
        "users": selectors.assignable_users() if can_triage else [],
        "statuses": Status.choices,
        "resolutions": [r for r in Resolution.choices if r[0]],
        "expert_group": roles.DOMAIN_EXPERT,
    })


@action
def claim(request: HtmxHttpRequest, cluster_id: int) -> str:
    c = actions.cluster_claim(actor=request.user, cluster_id=cluster_id)
    return f"You claimed cluster #{c.pk} until {c.claim_expires_at:%H:%M} UTC."


@action
def release(request: HtmxHttpRequest, cluster_id: int) -> str:
    actions.cluster_release(actor=request.user, cluster_id=cluster_id)
    return f"Released cluster #{cluster_id}."


@action
def set_status(request: HtmxHttpRequest, cluster_id: int) -> str:
    c = actions.cluster_set_status(actor=request.user, cluster_id=cluster_id, status=request.POST.get("status", ""),
                                    resolution=request.POST.get("resolution", ""))
    return f"Cluster #{c.pk} is now {c.get_status_display().lower()}."


@action
def guidance(request: HtmxHttpRequest, cluster_id: int) -> str:
    form = GuidanceForm(request.POST)
    if not form.is_valid():
        raise ValidationError(form.errors.as_data())
    actions.cluster_set_guidance(actor=request.user, cluster_id=cluster_id, guidance=form.cleaned_data["guidance"])
    return "Guidance saved."


@action
def tag_members(request: HtmxHttpRequest, cluster_id: int) -> str:
    n = actions.cluster_tag_members(actor=request.user, cluster_id=cluster_id,
                                     tag_id=_one_id(request.POST.get("tag"), "tag"))
    return f"Tagged {n} replies."


@action
def move_members(request: HtmxHttpRequest, cluster_id: int) -> str:
    items = id_forms.ids(request.POST.getlist("items"), "items")
    if request.POST.get("op") == "split":
        target = actions.members_move(actor=request.user, item_ids=items, to_cluster_id=None)
        return f"Split {len(items)} items out into cluster #{target.pk}."
    to = _one_id(request.POST.get("to"), "to")
    target = actions.members_move(actor=request.user, item_ids=items, to_cluster_id=to)
    return f"Moved {len(items)} items to cluster #{target.pk}."


@action
def decide_proposal(request: HtmxHttpRequest, proposal_id: int) -> str:
    accept = request.POST.get("decision") == "accept"
    p = proposals.proposal_decide(actor=request.user, proposal_id=proposal_id, accept=accept)
    return f"Proposal {'accepted' if accept else 'rejected'} ({p.get_kind_display().lower()})."


@action
def bulk(request: HtmxHttpRequest, cluster_id: int | None = None) -> str:
    """Queue and cluster-page bulk actions over selected clusters: assign, route, tag, merge, status. Each is all or
    nothing: one refused cluster refuses the action, and the message names it and why."""
    ids = id_forms.ids(request.POST.getlist("clusters"), "clusters")
    if cluster_id is not None:
        ids = sorted({*ids, cluster_id})
    if not ids:
        raise ValidationError({"clusters": "Select at least one cluster."})
    op = request.POST.get("op", "")
    user = request.user
    if op == "assign":
        n = actions.clusters_assign(actor=user, cluster_ids=ids,
                                     owner_id=_one_id(request.POST.get("owner"), "owner", required=False))
        return f"Assigned {n} clusters."
    if op == "route":
        n = actions.clusters_route(actor=user, cluster_ids=ids, group_name=roles.DOMAIN_EXPERT,
                                    assignee_id=_one_id(request.POST.get("assignee"), "assignee", required=False))
        return f"Routed {n} clusters to domain experts."
    if op == "tag":
        tag_id = _one_id(request.POST.get("tag"), "tag")
        n = actions.clusters_tag_members(actor=user, cluster_ids=ids, tag_id=tag_id)
        return f"Tagged {n} replies."
    if op == "merge":
        into = _one_id(request.POST.get("into"), "into", required=False)
        if into is None:  # the largest selected cluster survives (ties: the oldest)
            sizes = dict(Cluster.objects.filter(pk__in=ids).values_list("pk", "size"))
            into = min(ids, key=lambda i: (-sizes.get(i, 0), i))
        target = actions.clusters_merge(actor=user, cluster_ids=ids, into_id=into)
        return f"Merged {len(ids) - 1} clusters into #{target.pk}."
    if op == "status":
        n = actions.clusters_set_status(actor=user, cluster_ids=ids, status=request.POST.get("status", ""),
                                        resolution=request.POST.get("resolution", ""))
        return f"Updated {n} clusters."
    raise ValidationError({"op": "Choose an action."})
