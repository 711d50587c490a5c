"""``{% inbox_header %}``: the header's inbox link with its live unread count; ``mention_parts``: a body cut into
text and mentions, for templates to mark up."""

from __future__ import annotations

from django import template

from annotations.inbox import mentions, selectors

register = template.Library()


@register.inclusion_tag("inbox/inbox.html#header", takes_context=True)
def inbox_header(context: template.Context) -> dict:
    # The user from the context, not the request: error pages may be rendered without a request.
    user = context.get("user")
    if user is None or not user.is_authenticated:
        return {"hidden": True}
    return {
        **selectors.header(user, on_inbox=context.get("nav") == "inbox", count=False),
        "request": context.get("request"),
    }


@register.filter
def mention_parts(body: str) -> list[mentions.Part]:
    """``body`` as parts: plain text, and mentions of active users (one query, only for a body with an ``@``)."""
    body = body or ""
    if "@" not in body:
        return [mentions.Part(body)] if body else []
    return mentions.split(body, mentions.existing(mentions.candidates(body)))
