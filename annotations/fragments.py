"""The review page's rendered cards and turns, kept in Django's cache as template fragments.

Why: the review page target (docs/benchmarks.md, "Review page p95, 50 turns with 200 annotations", <= 60 ms) is not
met by rendering 200 cards and 50 turns through the template engine on every view of a busy conversation; each
fragment changes rarely (a card when its annotation or thread changes, a turn when its text or correction does).
So each is rendered once per state and kept under Django's template fragment key (``make_template_fragment_key``,
the key ``{% cache %}`` would use) over everything it depends on. A page reads all of them with one ``get_many``
(``{% cache %}`` would make one round trip per fragment) and only what is missing is read in full and rendered.

The cache is an optimisation: when it is down, everything is rendered and the page still works.
"""

from __future__ import annotations

import functools
import hashlib
import logging
from collections.abc import Callable, Iterable
from pathlib import Path

from django.core.cache import cache
from django.core.cache.utils import make_template_fragment_key
from django.http import HttpRequest
from django.template.loader import get_template, render_to_string
from django.utils.safestring import mark_safe

from annotations import anchoring, rendering, selectors
from annotations import permissions as perms
from annotations.models import Annotation, Tag
from sessions.models import Turn, TurnRole

TEMPLATE = "annotations/review.html"
FRAGMENT_SECONDS = 24 * 3600
logger = logging.getLogger(__name__)


@functools.cache
def template_digest() -> str:
    """Changes whenever the review template does, so cached fragments never outlive the markup they were made with."""
    origin = get_template(TEMPLATE).origin.name
    return hashlib.sha256(Path(origin).read_bytes()).hexdigest()[:12]


def permission_context(request: HttpRequest) -> dict:
    return {"can_annotate": perms.can_annotate(request.user), "can_decide": perms.can_decide(request.user),
            "four_eyes": perms.four_eyes()}


def _flags(context: dict) -> str:
    return "".join(str(int(flag)) for flag in context.values())


def card_key(viewer: str, annotation) -> str:
    """A card depends on its annotation's ``updated_at`` (moved by every change to it or its thread) and on
    ``viewer``: who is looking, their permissions, the tag names and the template (``card_viewer``)."""
    return make_template_fragment_key("review-card", [viewer, annotation.pk, annotation.updated_at.timestamp()])


def card_viewer(request: HttpRequest, context: dict, tags: Iterable[Tag]) -> str:
    taxonomy = hashlib.sha256("|".join(f"{t.pk}:{t.name}" for t in tags).encode()).hexdigest()[:12]
    return f"{template_digest()}:{request.user.pk}:{_flags(context)}:{taxonomy}"


def turn_key(flags: str, conversation, view: selectors.TurnView) -> str:
    """A turn depends on its text, the conversation's content hash (moved by any re-import that edits it, and so by any
    change of a turn's role, position or context), import time (ids can come back in a recreated database) and last
    change (``updated_at``: end-user feedback sent live changes no content hash), its correction, the viewer's
    permissions (``flags``) and the template; not on who the viewer is, so reviewers share it."""
    c = view.correction
    return make_template_fragment_key("review-turn", [
        template_digest(), flags, conversation.pk, conversation.imported_at.timestamp(), conversation.content_hash,
        conversation.updated_at.timestamp(), view.turn.pk, view.text_hash or anchoring.text_hash(view.turn.content),
        c.version if c else 0, c.updated_at.timestamp() if c else 0,
    ])


def _cached(keys: list[str]) -> dict[str, str]:
    try:
        return cache.get_many(keys)
    except Exception:  # render everything when the cache is down
        logger.warning("review fragment cache unavailable", exc_info=True)
        return {}


def _keep(fresh: dict[str, str]) -> None:
    if not fresh:
        return
    try:
        if len(fresh) == 1:  # a save: one SET (set_many wraps even one key in a pipeline transaction)
            cache.set(*next(iter(fresh.items())), timeout=FRAGMENT_SECONDS)
        else:
            cache.set_many(fresh, timeout=FRAGMENT_SECONDS)
    except Exception:
        logger.warning("review fragment cache unavailable", exc_info=True)


def _fill(items: list, keys: list[str], render_missing: Callable[[list], list[str]], attr: str) -> None:
    """Set ``attr`` on each item to its fragment: cached ones from one ``get_many``, the rest rendered by
    ``render_missing`` (given the missing items, in order) and cached."""
    cached = _cached(keys)
    missing = [(item, key) for item, key in zip(items, keys, strict=True) if key not in cached]
    rendered = render_missing([item for item, _ in missing]) if missing else []
    fresh = {key: html for (_, key), html in zip(missing, rendered, strict=True)}
    for item, key in zip(items, keys, strict=True):
        setattr(item, attr, cached.get(key, fresh.get(key, "")))
    _keep({k: v for k, v in fresh.items() if v})


def render_cards(request: HttpRequest, rows: list, tags: list[Tag], *, saved: Annotation | None = None) -> None:
    """Give each row (an Annotation or a ``selectors.AnnotationRow``) ``card_html``. ``saved``: the instance a
    service just wrote, complete enough to render without reading it again."""
    context = permission_context(request)
    viewer = card_viewer(request, context, tags)

    def render(missing: list) -> list[str]:
        full = {saved.pk: saved} if saved is not None else selectors.annotations_full([r.pk for r in missing], tags)
        return [
            render_to_string(f"{TEMPLATE}#card", {"a": full[r.pk], **context}, request=request) if r.pk in full else ""
            for r in missing
        ]

    keys = [card_key(viewer, row) for row in rows]
    if saved is not None:  # just written: a new state, so nothing to look up
        for row, key in zip(rows, keys, strict=True):
            row.card_html = render([row])[0]
            _keep({key: row.card_html})
        return
    _fill(rows, keys, render, "card_html")


def turn_context(turn: Turn, view: selectors.TurnView) -> dict:
    """A turn's template context: a reply with its Markdown rendered (source-mapped, sanitised) and its end-user
    feedback. Imported feedback moves the conversation's content hash and live feedback its ``updated_at``, so the
    turn's cache key covers both."""
    ctx = {"turn": turn, "text_hash": view.text_hash, "correction": view.correction}
    if turn.role == TurnRole.ASSISTANT:
        rendered = rendering.render_markdown(turn.content)
        feedback = getattr(turn, "feedback", [])
        ctx.update(
            formatted=rendered.formatted,
            # Sanitised by nh3 with an allow-list of tags and attributes (annotations/rendering.py).
            reply_html=mark_safe(rendered.html),  # noqa: S308
            feedback=feedback,
            feedback_flags=selectors.feedback_flags(feedback),
        )
    return ctx


def render_turns(request: HttpRequest, data: selectors.ReviewData) -> None:
    """Give each turn view ``html``: the reply (or user/system turn) with its context and corrected reply."""
    context = permission_context(request)

    def render(missing: list) -> list[str]:
        full = selectors.turns_full([tv.turn.pk for tv in missing])
        return [
            render_to_string(f"{TEMPLATE}#turn", {**turn_context(full.get(tv.turn.pk, tv.turn), tv), **context},
                             request=request)
            for tv in missing
        ]

    flags = _flags(context)

    def viewer_flags(tv: selectors.TurnView) -> str:
        # The author of a draft correction sees its approve button disabled (four-eyes): their own variant.
        authored = tv.correction is not None and perms.four_eyes_refusal(request.user, tv.correction)
        return flags + ("a" if authored else "")

    _fill(data.turns, [turn_key(viewer_flags(tv), data.conversation, tv) for tv in data.turns], render, "html")
