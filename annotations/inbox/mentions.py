"""``@username`` in comment and reply bodies.

A mention is ``@`` followed by a username (letters, digits and ``_ . + -``, as Django's usernames allow; ``@`` itself
is left out so an e-mail address is never one) that is not preceded by a word character, so ``ann@example.com`` is
not a mention of ``example.com``. Only active users count: ``@unknown`` stays text. A sentence's full stop after the
name (``@ann.``) is not part of it unless a user is called so.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from django.contrib.auth import get_user_model

MENTION = re.compile(r"(?<![\w@.+-])@([\w][\w.+-]*)")
_TRAILING = ".+-"


def candidates(text: str) -> set[str]:
    """Every name a mention in ``text`` could stand for (each with and without trailing punctuation)."""
    names: set[str] = set()
    for match in MENTION.finditer(text or ""):
        name = match.group(1)
        names.add(name)
        names.add(name.rstrip(_TRAILING))
    names.discard("")
    return names


def existing(names: set[str]) -> set[str]:
    """The names of active users among ``names`` (one query; none for no names)."""
    if not names:
        return set()
    users = get_user_model().objects.filter(username__in=names, is_active=True)
    return set(users.values_list("username", flat=True))


@dataclass(frozen=True)
class Part:
    """A piece of a body: plain text, or (``username`` set) a mention written ``text``."""

    text: str
    username: str = ""


def split(text: str, known: set[str]) -> list[Part]:
    """``text`` cut into plain parts and mentions of the users in ``known``; the parts join back into ``text``."""
    parts: list[Part] = []
    at = 0
    for match in MENTION.finditer(text or ""):
        name = match.group(1)
        if name not in known:
            name = name.rstrip(_TRAILING)
            if name not in known:
                continue
        start = match.start()
        if start > at:
            parts.append(Part(text[at:start]))
        parts.append(Part("@" + name, name))
        at = start + 1 + len(name)
    if at < len(text or ""):
        parts.append(Part(text[at:]))
    return parts


def mentioned(text: str) -> set[str]:
    """The usernames of the active users ``text`` mentions."""
    found = existing(candidates(text))
    return {p.username for p in split(text, found) if p.username}
