"""Review workspace views: thin adapters from requests to selectors/services and back to template fragments.

Mutations answer with the changed card (``review.html#card``) and, where other regions change too, out-of-band
fragments. Errors keep their status (400 invalid, 403 forbidden, 409 conflict) and carry a fragment that the page's
script swaps in place of the form that caused them.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import re
from collections.abc import Callable
from functools import wraps
from pathlib import Path

from django.core.cache import cache
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.template.loader import get_template, render_to_string
from django.urls import get_script_prefix, reverse
from django.utils.html import format_html_join
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from annotations import anchoring, selectors, services
from annotations import permissions as perms
from annotations.models import Annotation, AnnotationReply, Correction, Tag
from feedbackhub.http import HtmxHttpRequest
from feedbackhub.urlparts import id_url_parts
from sessions.models import Turn

TEMPLATE = "annotations/review.html"
logger = logging.getLogger(__name__)
CARD_CACHE_SECONDS = 24 * 3600
# A whole workspace is large (hundreds of KB on a busy conversation) and superseded by every change to it: kept only
# for revisits within a few minutes, so Redis holds a bounded number of them.
WORKSPACE_CACHE_SECONDS = 600
HEX_COLOUR = re.compile(r"^#[0-9a-fA-F]{6}$")


def _int(value: str | None, field: str) -> int | None:
    if value in (None, ""):
        return None
    try:
        return int(value)  # type: ignore[arg-type]
    except ValueError:
        raise ValidationError({field: f"{value!r} is not a whole number."}) from None


@functools.cache
def _url_bases(script_prefix: str) -> dict[str, str]:
    """URL prefixes for the per-card forms, built once per process (and script prefix) instead of one reverse() per
    form."""
    return {
        "a_base": id_url_parts("annotations:card")[0],
        "r_base": id_url_parts("annotations:reply_edit")[0],
        "t_base": id_url_parts("annotations:annotation_create")[0],
        "s_base": id_url_parts("recall:similar_annotation")[0],
    }


def _perm_context(request: HttpRequest) -> dict:
    return {
        "can_annotate": perms.can_annotate(request.user),
        "can_decide": perms.can_decide(request.user),
        **_url_bases(get_script_prefix()),
    }


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


@functools.cache
def _template_digest() -> str:
    """Changes whenever the review template does, so cached cards never outlive the markup they were made with."""
    origin = get_template(TEMPLATE).origin.name
    return hashlib.sha256(Path(origin).read_bytes()).hexdigest()[:12]


def _flags(request: HttpRequest) -> str:
    return f"{int(perms.can_annotate(request.user))}{int(perms.can_decide(request.user))}"


def card_keys(request: HttpRequest, rows: list, tags: list[Tag]) -> dict[int, str]:
    """The cache key of each row's card. It holds everything a card depends on: the annotation's ``updated_at``
    (moved by every change to it or its thread), the viewer and their permissions, the tag names, and the template
    itself."""
    taxonomy = hashlib.sha256("|".join(f"{t.pk}:{t.name}" for t in tags).encode()).hexdigest()[:12]
    prefix = f"review:card:{_template_digest()}:{request.user.pk}:{_flags(request)}:{taxonomy}"
    return {row.pk: f"{prefix}:{row.pk}:{row.updated_at.timestamp()}" for row in rows}


def render_cards(
    request: HttpRequest,
    rows: list,
    tags: list[Tag],
    *,
    prepared: dict[int, Annotation] | None = None,
    keys: dict[int, str] | None = None,
) -> None:
    """Give each row (an Annotation or a ``selectors.AnnotationRow``) ``card_html``: its rendered card, from the
    cache when that exact state was rendered for this viewer before (``card_keys``); only the rest are read in full
    and rendered."""
    keys = keys or card_keys(request, rows, tags)
    cached = {}
    try:
        if not prepared:
            cached = cache.get_many(list(keys.values()))
    except Exception:  # the cache is an optimisation: render everything when it is down
        logger.warning("review card cache unavailable", exc_info=True)
    full = dict(prepared or {})
    missing = [row.pk for row in rows if keys[row.pk] not in cached and row.pk not in full]
    if missing:
        full.update(selectors.annotations_full(missing, tags))
    context = _perm_context(request)
    fresh = {}
    for row in rows:
        html = cached.get(keys[row.pk])
        if html is None:
            annotation = full.get(row.pk)
            if annotation is None:  # deleted from the database since the rows were read
                html = ""
            else:
                html = render_to_string(f"{TEMPLATE}#card", {"a": annotation, **context}, request=request)
                fresh[keys[row.pk]] = html
        row.card_html = html
    _cache_set(fresh)


def turn_keys(request: HttpRequest, data: selectors.ReviewData) -> dict[int, str]:
    """The cache key of each turn's rendered html. It depends on the turn's text (hash), the conversation's content
    hash (moved by any re-import that edits it, and so by any change of a turn's role, position or context), the
    correction's version, the viewer's permissions and the template, not on who the viewer is, so reviewers with the
    same role share it."""
    conversation = data.conversation
    # imported_at pins the conversation row itself: ids can come back (a recreated database), timestamps do not.
    prefix = (f"review:turn:{_template_digest()}:{_flags(request)}:{conversation.pk}:"
              f"{conversation.imported_at.timestamp()}:{conversation.content_hash}")
    keys = {}
    for tv in data.turns:
        c = tv.correction
        keys[tv.turn.pk] = (f"{prefix}:{tv.turn.pk}:{tv.text_hash or anchoring.text_hash(tv.turn.content)}:"
                            f"{c.version if c else 0}:{c.updated_at.timestamp() if c else 0}")
    return keys


def render_turns(request: HttpRequest, data: selectors.ReviewData, *, keys: dict[int, str] | None = None) -> None:
    """Give each turn view ``html``: the reply (or user/system turn) with its context and corrected reply, from the
    cache when rendered before (``turn_keys``); only the rest are read in full and rendered."""
    keys = keys or turn_keys(request, data)
    try:
        cached = cache.get_many(list(keys.values()))
    except Exception:
        logger.warning("review turn cache unavailable", exc_info=True)
        cached = {}
    context = _perm_context(request)
    fresh = {}
    full = selectors.turns_full([pk for pk, key in keys.items() if key not in cached])
    for tv in data.turns:
        html = cached.get(keys[tv.turn.pk])
        if html is None:
            turn = full.get(tv.turn.pk, tv.turn)
            ctx = {"turn": turn, "text_hash": tv.text_hash, "correction": tv.correction, **context}
            html = render_to_string(f"{TEMPLATE}#turn", ctx, request=request)
            fresh[keys[tv.turn.pk]] = html
        tv.html = html
    _cache_set(fresh)


def _cache_set(fresh: dict[str, str], timeout: int = CARD_CACHE_SECONDS) -> None:
    if not fresh:
        return
    try:
        if len(fresh) == 1:  # a save: one SET with its expiry, one round trip (set_many pipelines a transaction)
            cache.set(*next(iter(fresh.items())), timeout=timeout)
        else:
            cache.set_many(fresh, timeout=timeout)
    except Exception:
        logger.warning("review cache unavailable", exc_info=True)


def render_workspace(request: HttpRequest, data: selectors.ReviewData) -> str:
    """The workspace of the review page: every turn with its margin of cards, and the orphans. Cached as a whole
    under a key made of every card's and turn's own key, so it is reused exactly while none of them changed; when one
    did, the cards and turns are taken from their own caches and only what changed is rendered."""
    rows = [a for tv in data.turns for a in tv.annotations] + data.orphans
    cards, turns = card_keys(request, rows, data.all_tags), turn_keys(request, data)
    signature = hashlib.sha256("\n".join([*cards.values(), *turns.values()]).encode()).hexdigest()
    key = f"review:workspace:{_template_digest()}:{request.user.pk}:{data.conversation.pk}:{signature}"
    try:
        html = cache.get(key)
    except Exception:
        logger.warning("review cache unavailable", exc_info=True)
        html = None
    if html is not None:
        return html
    render_cards(request, rows, data.all_tags, keys=cards)
    for tv in data.turns:
        # One string per margin rather than one template variable per card (a few hundred on a busy conversation);
        # format_html_join escapes anything not already rendered markup, as the template would.
        tv.cards_html = format_html_join("", "{}", ((a.card_html,) for a in tv.annotations))
    render_turns(request, data, keys=turns)
    html = render_to_string(f"{TEMPLATE}#workspace", {"data": data}, request=request)
    _cache_set({key: html}, timeout=WORKSPACE_CACHE_SECONDS)
    return html


def _card(
    request: HttpRequest, annotation_id: int, *, saved: Annotation | None = None, extra: str = "", status: int = 200
) -> HttpResponse:
    """The card of one annotation; ``saved`` is the instance a service just wrote (saves a read)."""
    tags = selectors.all_tags()
    if saved is not None:
        # Just saved: a new updated_at, so not in the cache; complete the instance rather than read it again.
        annotation = selectors.prepare_for_card(saved, tags, request.user)
        render_cards(request, [annotation], tags, prepared={annotation.pk: annotation})
    else:
        annotation = get_object_or_404(Annotation.objects.only("pk", "updated_at"), pk=annotation_id)
        render_cards(request, [annotation], tags)
    return HttpResponse(annotation.card_html + extra, status=status)  # type: ignore[attr-defined]


def _correction_html(request: HttpRequest, turn: Turn, *, oob: bool) -> str:
    correction = Correction.objects.select_related("approved_by", "updated_by").filter(turn=turn).first()
    ctx = {"turn": turn, "correction": correction, "oob": oob, **_perm_context(request)}
    return render(request, f"{TEMPLATE}#correction", ctx).content.decode()


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


@require_GET
def review(request: HtmxHttpRequest, conversation_id: int) -> HttpResponse:
    """The reading view of a conversation with its comment margin."""
    data = selectors.review_data(conversation_id)
    if data.stale_turns:
        for turn in data.stale_turns:
            services.annotations_reanchor(turn=turn)
        data = selectors.review_data(conversation_id)
    tags = data.tags
    workspace = render_workspace(request, data)
    config = {
        "changesUrl": reverse("annotations:changes", args=[conversation_id]),
        "canAnnotate": perms.can_annotate(request.user),
        "canDecide": perms.can_decide(request.user),
        "userId": request.user.pk,
        "tags": [{"id": t.pk, "name": t.name, "hotkey": t.hotkey} for t in tags],
    }
    ctx = {"data": data, "workspace": workspace, "tags": tags, "config": config, "nav": "sessions",
           **_perm_context(request)}
    return render(request, TEMPLATE, ctx)


@require_GET
def changes(request: HtmxHttpRequest, conversation_id: int) -> HttpResponse:
    """Polled every few seconds: 204 when nothing changed since ``since``, otherwise the changed cards and
    corrections as out-of-band fragments plus a new poller carrying the new stamp."""
    since = selectors.parse_stamp(request.GET.get("since"))
    found = selectors.changes_since(conversation_id, since)
    if found is None:
        return HttpResponse(status=204)
    render_cards(request, found.annotations, selectors.all_tags())
    ctx = {"conversation_id": conversation_id, "changes": found, **_perm_context(request)}
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
    post = request.POST
    annotation = services.annotation_create(
        actor=request.user,
        turn=turn,
        body=post.get("body", ""),
        tag_ids=[_int(t, "tags") for t in post.getlist("tags") if t],
        kind=post.get("kind", "comment"),
        start=_int(post.get("start"), "start"),
        end=_int(post.get("end"), "end"),
        exact=post.get("exact", ""),
        text_hash=post.get("text_hash", ""),
        replacement=post.get("replacement", ""),
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
    post = request.POST
    tag_ids = [_int(t, "tags") for t in post.getlist("tags") if t] if "tags_present" in post else None
    saved = services.annotation_update(
        actor=request.user,
        annotation_id=annotation_id,
        version=_int(post.get("version"), "version"),
        body=post.get("body", ""),
        tag_ids=tag_ids,
        replacement=post.get("replacement") if "replacement" in post else None,
    )
    return _card(request, annotation_id, saved=saved)


@require_POST
@handles_errors
def annotation_status(request: HtmxHttpRequest, annotation_id: int) -> HttpResponse:
    saved = services.annotation_set_status(
        actor=request.user,
        annotation_id=annotation_id,
        version=_int(request.POST.get("version"), "version"),
        resolved=request.POST.get("resolved") == "1",
    )
    return _card(request, annotation_id, saved=saved)


@require_POST
@handles_errors
def annotation_delete(request: HtmxHttpRequest, annotation_id: int) -> HttpResponse:
    saved = services.annotation_delete(
        actor=request.user, annotation_id=annotation_id, version=_int(request.POST.get("version"), "version")
    )
    return _card(request, annotation_id, saved=saved)


@require_POST
@handles_errors
def annotation_restore(request: HtmxHttpRequest, annotation_id: int) -> HttpResponse:
    saved = services.annotation_restore(actor=request.user, annotation_id=annotation_id)
    return _card(request, annotation_id, saved=saved)


@require_POST
@handles_errors
def annotation_decide(request: HtmxHttpRequest, annotation_id: int) -> HttpResponse:
    annotation = services.suggestion_decide(
        actor=request.user,
        annotation_id=annotation_id,
        version=_int(request.POST.get("version"), "version"),
        accept=request.POST.get("accept") == "1",
    )
    turn = Turn.objects.get(pk=annotation.turn_id)
    return _card(request, annotation_id, saved=annotation, extra=_correction_html(request, turn, oob=True))


@require_GET
def annotation_card(request: HtmxHttpRequest, annotation_id: int) -> HttpResponse:
    """The current card (used by "keep theirs" in the conflict view)."""
    return _card(request, annotation_id)


@require_GET
def annotation_history(request: HtmxHttpRequest, annotation_id: int) -> HttpResponse:
    get_object_or_404(Annotation, pk=annotation_id)
    return render(request, f"{TEMPLATE}#history", {"events": selectors.annotation_history(annotation_id)})


# --- replies --------------------------------------------------------------------------------------------------------


@require_POST
@handles_errors
def reply_create(request: HtmxHttpRequest, annotation_id: int) -> HttpResponse:
    services.reply_create(actor=request.user, annotation_id=annotation_id, body=request.POST.get("body", ""))
    return _card(request, annotation_id)


@require_POST
@handles_errors
def reply_edit(request: HtmxHttpRequest, reply_id: int) -> HttpResponse:
    reply = services.reply_update(
        actor=request.user, reply_id=reply_id, version=_int(request.POST.get("version"), "version"),
        body=request.POST.get("body", ""),
    )
    return _card(request, reply.annotation_id)


@require_POST
@handles_errors
def reply_delete(request: HtmxHttpRequest, reply_id: int) -> HttpResponse:
    reply = services.reply_delete(actor=request.user, reply_id=reply_id, undo=request.POST.get("undo") == "1")
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
    services.correction_save(
        actor=request.user,
        turn=turn,
        text=request.POST.get("text", ""),
        rationale=request.POST.get("rationale", ""),
        version=_int(request.POST.get("version"), "version"),
    )
    return HttpResponse(_correction_html(request, turn, oob=False))


@require_POST
@handles_errors
def correction_approve(request: HtmxHttpRequest, correction_id: int) -> HttpResponse:
    correction = services.correction_approve(
        actor=request.user, correction_id=correction_id, version=_int(request.POST.get("version"), "version")
    )
    turn = Turn.objects.get(pk=correction.turn_id)
    return HttpResponse(_correction_html(request, turn, oob=False))


@require_GET
def correction_history(request: HtmxHttpRequest, correction_id: int) -> HttpResponse:
    get_object_or_404(Correction, pk=correction_id)
    return render(request, f"{TEMPLATE}#history", {"events": selectors.correction_history(correction_id)})

