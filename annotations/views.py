"""Review workspace views: thin adapters from requests to selectors/services and back to template fragments.

Mutations answer with the changed card (``review.html#card``) and, where other regions change too, out-of-band
fragments. Errors keep their status (400 invalid, 403 forbidden, 409 conflict) and carry a fragment that the page's
script swaps in place of the form that caused them.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from functools import wraps

from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from annotations import forms, fragments, selectors, services, visibility
from annotations import permissions as perms
from annotations.models import Annotation, AnnotationReply, Correction, Tag
from feedbackhub.http import HtmxHttpRequest
from sessions.models import Turn

TEMPLATE = fragments.TEMPLATE
logger = logging.getLogger(__name__)
HEX_COLOUR = re.compile(r"^#[0-9a-fA-F]{6}$")


def _errors(request: HttpRequest, exc: ValidationError | PermissionDenied, status: int) -> HttpResponse:
    if isinstance(exc, ValidationError):
        messages = [f"{field}: {'; '.join(msgs)}" if field != "__all__" else "; ".join(msgs)
                    for field, msgs in exc.message_dict.items()] if hasattr(exc, "error_dict") else exc.messages
    else:
        messages = [str(exc) or "You may not do that."]
    return render(request, f"{TEMPLATE}#errors", {"messages": messages}, status=status)


def handles_errors(view: Callable) -> Callable:
    """Map service errors to responses: ValidationError -> 400, PermissionDenied -> 403, Conflict -> 409."""

    @wraps(view)
    def wrapper(request: HtmxHttpRequest, *args, **kwargs) -> HttpResponse:
        try:
            return view(request, *args, **kwargs)
        except ValidationError as exc:
            return _errors(request, exc, 400)
        except PermissionDenied as exc:
            return _errors(request, exc, 403)
        except services.Conflict as exc:
            return _conflict(request, exc)

    return wrapper


def render_workspace(request: HttpRequest, data: selectors.ReviewData) -> str:
    """The workspace of the review page: every turn with its margin of cards, and the orphans; each card and turn
    from the fragment cache when rendered before (``annotations.fragments``)."""
    fragments.render_cards(request, [a for tv in data.turns for a in tv.annotations] + data.orphans, data.all_tags)
    fragments.render_turns(request, data)
    return render_to_string(f"{TEMPLATE}#workspace", {"data": data}, request=request)


def _card(
    request: HttpRequest, annotation_id: int, *, saved: Annotation | None = None, extra: str = "", status: int = 200
) -> HttpResponse:
    """The card of one annotation; ``saved`` is the instance a service just wrote (saves a read)."""
    tags = selectors.all_tags()
    if saved is not None:
        # Just saved: a new updated_at, so not in the cache; complete the instance rather than read it again.
        annotation = selectors.prepare_for_card(saved, tags, request.user)
        fragments.render_cards(request, [annotation], tags, saved=annotation)
    else:
        annotation = visible_annotation(request, annotation_id)
        fragments.render_cards(request, [annotation], tags)
    return HttpResponse(annotation.card_html + extra, status=status)  # type: ignore[attr-defined]


def visible_annotation(request: HttpRequest, annotation_id: int) -> Annotation:
    """The annotation, or 404 when it does not exist or is another reviewer's work the viewer may not see yet."""
    annotation = get_object_or_404(
        Annotation.objects.only("pk", "updated_at", "turn_id", "conversation_id", "author_id"), pk=annotation_id
    )
    if visibility.hides(request.user, annotation.turn_id, annotation.conversation_id, annotation.author_id):
        raise Http404("No such annotation.")
    return annotation


def _correction_html(request: HttpRequest, turn: Turn, *, oob: bool) -> str:
    correction = Correction.objects.select_related("approved_by", "updated_by").filter(turn=turn).first()
    ctx = {"turn": turn, "correction": correction, "oob": oob, **fragments.permission_context(request)}
    return render_to_string(f"{TEMPLATE}#correction", ctx, request=request)


def _conflict(request: HttpRequest, exc: services.Conflict) -> HttpResponse:
    current = exc.current
    if isinstance(current, Annotation):
        theirs_text, kind = current.body, "annotation"
        yours_text = exc.yours.get("body")
        changed_by = current.author
    elif isinstance(current, AnnotationReply):
        theirs_text, kind, yours_text, changed_by = current.body, "reply", exc.yours.get("body"), current.author
    else:
        theirs_text, kind, yours_text = current.text, "correction", exc.yours.get("text")
        changed_by = current.updated_by
    ctx = {
        "current": current,
        "kind": kind,
        "yours": yours_text,
        "yours_extra": exc.yours,
        "theirs": theirs_text,
        "changed_by": changed_by,
    }
    return render(request, f"{TEMPLATE}#conflict", ctx, status=409)


# --- pages ----------------------------------------------------------------------------------------------------------


def review_context(request: HttpRequest, conversation_id: int) -> dict:
    """What the review page's template needs: the workspace rendered, the browser's config, the pickers. Shared with
    pages that show the workspace inside their own frame (a review queue's item)."""
    blind = visibility.blind_turns(request.user, conversation_id)
    data = selectors.review_data(conversation_id, request.user, blind)
    if data.stale_turns:
        for turn in data.stale_turns:
            services.annotations_reanchor(turn=turn)
        data = selectors.review_data(conversation_id, request.user, blind)
    tags = data.tags
    workspace = render_workspace(request, data)
    config = {
        "changesUrl": reverse("annotations:changes", args=[conversation_id]),
        "canAnnotate": perms.can_annotate(request.user),
        "canDecide": perms.can_decide(request.user),
        "userId": request.user.pk,
        "tags": [{"id": t.pk, "name": t.name, "hotkey": t.hotkey} for t in tags],
    }
    return {"data": data, "workspace": workspace, "tags": tags, "config": config, "nav": "conversations",
            **fragments.permission_context(request)}


@require_GET
def review(request: HtmxHttpRequest, conversation_id: int) -> HttpResponse:
    """The reading view of a conversation with its comment margin."""
    return render(request, TEMPLATE, review_context(request, conversation_id))


@require_GET
@handles_errors
def changes(request: HtmxHttpRequest, conversation_id: int) -> HttpResponse:
    """Polled every few seconds: 204 when nothing changed since ``since``, otherwise the changed cards and
    corrections as out-of-band fragments plus a new poller carrying the new stamp."""
    data = forms.parse(forms.ChangesForm, request.GET)
    found = selectors.changes_since(conversation_id, data["since"])
    if found is not None:
        # Only when something changed: most polls find nothing and ask nothing more.
        found = selectors.visible_changes(found, request.user.pk, visibility.blind_turns(request.user, conversation_id))
    if found is None:
        return HttpResponse(status=204)
    fragments.render_cards(request, found.annotations, selectors.all_tags())
    ctx = {"conversation_id": conversation_id, "changes": found, **fragments.permission_context(request)}
    return render(request, f"{TEMPLATE}#changes", ctx)


@require_GET
def tags_css(request: HttpRequest) -> HttpResponse:
    """Tag colours as a stylesheet (the CSP forbids inline styles). Colours are re-checked: only #rrggbb passes."""
    rules = []
    for tag in Tag.objects.all():
        if HEX_COLOUR.match(tag.colour):
            rules.append(f".tag-c-{tag.pk}{{--tag-colour:{tag.colour}}}")
    response = HttpResponse("\n".join(rules) + "\n", content_type="text/css; charset=utf-8")
    response["Cache-Control"] = "private, max-age=60"
    return response


# --- annotations ----------------------------------------------------------------------------------------------------


@require_POST
@handles_errors
def annotation_create(request: HtmxHttpRequest, turn_id: int) -> HttpResponse:
    turn = get_object_or_404(Turn, pk=turn_id)
    data = forms.parse(forms.AnnotationCreateForm, request.POST)
    annotation = services.annotation_create(
        actor=request.user, turn=turn, body=data["body"], tag_ids=data["tags"], kind=data["kind"],
        start=data["start"], end=data["end"], exact=data["exact"], text_hash=data["text_hash"],
        replacement=data["replacement"],
    )
    return _card(request, annotation.pk, saved=annotation, status=201)


@require_http_methods(["GET", "POST"])
@handles_errors
def annotation_edit(request: HtmxHttpRequest, annotation_id: int) -> HttpResponse:
    """GET: the edit form of one's own annotation, with its current version. POST: save it."""
    if request.method == "GET":
        tags = selectors.all_tags()
        annotation = selectors.annotation_for_card(annotation_id, tags)
        perms.require_author(request.user, annotation)
        return render(request, f"{TEMPLATE}#edit_form", {"a": annotation, "tags": selectors.active(tags)})
    data = forms.parse(forms.AnnotationEditForm, request.POST)
    saved = services.annotation_update(
        actor=request.user, annotation_id=annotation_id, version=data["version"], body=data["body"],
        tag_ids=data["tags"], replacement=data["replacement"],
    )
    return _card(request, annotation_id, saved=saved)


@require_POST
@handles_errors
def annotation_status(request: HtmxHttpRequest, annotation_id: int) -> HttpResponse:
    data = forms.parse(forms.StatusForm, request.POST)
    saved = services.annotation_set_status(
        actor=request.user, annotation_id=annotation_id, version=data["version"], resolved=data["resolved"]
    )
    return _card(request, annotation_id, saved=saved)


@require_POST
@handles_errors
def annotation_delete(request: HtmxHttpRequest, annotation_id: int) -> HttpResponse:
    data = forms.parse(forms.VersionForm, request.POST)
    saved = services.annotation_delete(actor=request.user, annotation_id=annotation_id, version=data["version"])
    return _card(request, annotation_id, saved=saved)


@require_POST
@handles_errors
def annotation_restore(request: HtmxHttpRequest, annotation_id: int) -> HttpResponse:
    saved = services.annotation_restore(actor=request.user, annotation_id=annotation_id)
    return _card(request, annotation_id, saved=saved)


@require_POST
@handles_errors
def annotation_decide(request: HtmxHttpRequest, annotation_id: int) -> HttpResponse:
    data = forms.parse(forms.DecideForm, request.POST)
    annotation = services.suggestion_decide(
        actor=request.user, annotation_id=annotation_id, version=data["version"], accept=data["accept"]
    )
    turn = Turn.objects.get(pk=annotation.turn_id)
    return _card(request, annotation_id, saved=annotation, extra=_correction_html(request, turn, oob=True))


@require_GET
def annotation_card(request: HtmxHttpRequest, annotation_id: int) -> HttpResponse:
    """The current card (used by "keep theirs" in the conflict view)."""
    return _card(request, annotation_id)


@require_GET
def annotation_history(request: HtmxHttpRequest, annotation_id: int) -> HttpResponse:
    visible_annotation(request, annotation_id)
    return render(request, f"{TEMPLATE}#history", {"events": selectors.annotation_history(annotation_id, request.user)})


# --- replies --------------------------------------------------------------------------------------------------------


@require_POST
@handles_errors
def reply_create(request: HtmxHttpRequest, annotation_id: int) -> HttpResponse:
    data = forms.parse(forms.ReplyForm, request.POST)
    services.reply_create(actor=request.user, annotation_id=annotation_id, body=data["body"])
    return _card(request, annotation_id)


@require_POST
@handles_errors
def reply_edit(request: HtmxHttpRequest, reply_id: int) -> HttpResponse:
    data = forms.parse(forms.ReplyForm, request.POST)
    reply = services.reply_update(actor=request.user, reply_id=reply_id, version=data["version"], body=data["body"])
    return _card(request, reply.annotation_id)


@require_POST
@handles_errors
def reply_delete(request: HtmxHttpRequest, reply_id: int) -> HttpResponse:
    data = forms.parse(forms.ReplyForm, request.POST)
    reply = services.reply_delete(actor=request.user, reply_id=reply_id, undo=data["undo"])
    return _card(request, reply.annotation_id)


# --- corrections ----------------------------------------------------------------------------------------------------


@require_http_methods(["GET", "POST"])
@handles_errors
def correction_save(request: HtmxHttpRequest, turn_id: int) -> HttpResponse:
    """GET: the form for a first corrected reply, prefilled with the reply. POST: save the corrected reply."""
    turn = get_object_or_404(Turn, pk=turn_id)
    if request.method == "GET":
        perms.require_decide(request.user)
        return render(request, f"{TEMPLATE}#new_correction_form", {"turn": turn})
    data = forms.parse(forms.CorrectionForm, request.POST)
    services.correction_save(
        actor=request.user, turn=turn, text=data["text"], rationale=data["rationale"], version=data["version"]
    )
    return HttpResponse(_correction_html(request, turn, oob=False))


@require_POST
@handles_errors
def correction_approve(request: HtmxHttpRequest, correction_id: int) -> HttpResponse:
    data = forms.parse(forms.VersionForm, request.POST)
    correction = services.correction_approve(actor=request.user, correction_id=correction_id, version=data["version"])
    turn = Turn.objects.get(pk=correction.turn_id)
    return HttpResponse(_correction_html(request, turn, oob=False))


@require_GET
def correction_history(request: HtmxHttpRequest, correction_id: int) -> HttpResponse:
    get_object_or_404(Correction, pk=correction_id)
    return render(request, f"{TEMPLATE}#history", {"events": selectors.correction_history(correction_id)})

