"""Small display helpers for the session list and trail. They return plain values; templates escape them."""

from __future__ import annotations

import datetime as dt
from functools import lru_cache

from django import template
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from feedbackhub import roles
from sessions.models import IMPLICIT_KINDS, NEGATIVE_KINDS, RATING_NEGATIVE_MAX, FeedbackKind

register = template.Library()

_LABELS = dict(FeedbackKind.choices)
_NEGATIVE = {str(kind) for kind in NEGATIVE_KINDS}
_IMPLICIT = {str(kind) for kind in IMPLICIT_KINDS}
_POSITIVE = {str(FeedbackKind.THUMBS_UP), str(FeedbackKind.COPY)}


@register.filter
def kind_label(kind: str) -> str:
    return _LABELS.get(kind, kind)


@register.filter
def kind_tone(kind: str) -> str:
    """``neg``, ``pos`` or ``neutral``: the colour of a feedback kind's badge in the list."""
    if kind in _NEGATIVE:
        return "neg"
    if kind in _POSITIVE:
        return "pos"
    return "neutral"


@lru_cache(maxsize=512)
def _badges(kinds: tuple[str, ...]) -> SafeString:
    if not kinds:
        return format_html('<span class="muted">{}</span>', "\u2014")
    return format_html_join(
        "", '<span class="badge kind kind-{} tone-{}">{}</span>', ((k, kind_tone(k), kind_label(k)) for k in kinds)
    )


@register.simple_tag
def kind_badges(kinds: list[str] | None) -> SafeString:
    """The feedback-kind badges of a session list row (a dash when there are none), every value escaped.

    A page shows fifty rows drawn from a few distinct kind sets, so each set's markup is built once and reused.
    """
    return _badges(tuple(kinds or ()))


_DASH = format_html('<span class="muted">{}</span>', "\u2014")
_NEGATIVE_MARKER = format_html(
    '<span class="neg-marker" title="{0}"><span class="visually-hidden">{0}</span></span>', "Has negative feedback"
)
# The row's markup; ids and counts are printed as plain numbers (str(int): never localised).
_ROW = """
        <tr{} data-session-id="{}">
          <td class="cell-title">
            {}
            {}
            <a href="{}" class="session-link">{}</a>
            <span class="sub muted">{}{}</span>
            <span class="session-tags" id="tags-{}"></span>
          </td>
          <td>{}</td>
          <td class="mono cell-model">{}</td>
          <td>{}</td>
          <td>{}</td>
          <td class="nowrap">{}</td>
          <td class="num">{}</td>
          <td><div class="badges">{}</div></td>
        </tr>"""


def _session_row(row, selectable: bool) -> SafeString:
    pk = str(row["pk"])
    negative = row["has_negative_feedback"]
    environment = row["environment"]
    return format_html(
        _ROW,
        format_html(' class="{}"', "is-negative") if negative else "",
        pk,
        _NEGATIVE_MARKER if negative else "",
        format_html(
            '<input type="checkbox" class="row-select" name="ids" value="{}" form="bulk-form" '
            'aria-label="Select this session">', pk,
        ) if selectable else "",
        row["href"],
        row["display_title"],
        row["external_id"],
        format_html(" \u00b7 app {}", row["app_version"]) if row["app_version"] else "",
        pk,
        format_html('<span class="badge env env-{0}">{0}</span>', environment) if environment else _DASH,
        row["model_version"] or "\u2014",
        row["user_role"] or "\u2014",
        row["source"],
        format_html('<time datetime="{}">{}</time>', row["started_iso"], row["started_text"])
        if row["started_text"] else format_html('<span class="muted">{}</span>', "unknown"),
        str(row["turn_count"]),
        _badges(tuple(row["feedback_kinds"] or ())),
    )


@register.simple_tag(takes_context=True)
def session_rows(context, rows) -> SafeString:
    """The ``<tr>`` of each session list row (``sessions.selectors.ConversationRow``), every value escaped.

    The rows are the page's hot loop: fifty rows of a dozen cells each made most of a list response's time as
    template nodes, so their markup is built here in one pass. Analysts and admins get the bulk-tag checkbox
    (``insights``); each row has an empty ``#tags-<id>`` slot that the tag loader fills.
    """
    viewer_roles = context.get("user_roles") or ()
    selectable = roles.PRODUCT_ANALYST in viewer_roles or roles.ADMIN in viewer_roles
    return format_html_join("", "{}", ((_session_row(row, selectable),) for row in rows))


@register.filter
def event_tone(event) -> str:
    """The colour of one feedback event: negative as stored by the importer, else by kind (a high rating is
    positive)."""
    if event.is_negative:
        return "neg"
    if event.kind == FeedbackKind.RATING and event.rating is not None:
        return "neg" if event.rating <= RATING_NEGATIVE_MAX else "pos"
    return kind_tone(event.kind)


@register.filter
def is_implicit(kind: str) -> bool:
    return kind in _IMPLICIT


@register.filter
def duration(start: dt.datetime | None, end: dt.datetime | None) -> str:
    """A short human duration between two datetimes, or an empty string."""
    if start is None or end is None or end < start:
        return ""
    seconds = int((end - start).total_seconds())
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"


@register.filter
def minute(value: dt.datetime | None) -> str:
    """``YYYY-MM-DD HH:MM`` in the current time zone; a cheaper ``date:"Y-m-d H:i"`` for long lists."""
    if value is None:
        return ""
    return timezone.localtime(value).strftime("%Y-%m-%d %H:%M")
