"""Publishable keys of the feedback widget: creation, revocation, look-up and the ``Origin`` check.

A key reads ``pk_<random>`` and is stored as it is: it is published in the host page, so it is an identifier, not a
secret. What a key may do is narrow (``WidgetKey``): write end-user feedback for its source, from its origins.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterable
from urllib.parse import urlsplit

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from feedbackhub.auth_tokens import clean_sources
from feedbackhub.models import WidgetKey

KEY_PREFIX = "pk_"
#: A process keeps a key row it has read this long (a revocation elsewhere takes effect within it).
KEY_CACHE_SECONDS = 10.0
_key_cache: dict[str, tuple[float, WidgetKey | None]] = {}


def clean_origin(value: str) -> str:
    """``scheme://host[:port]`` in lower case, the form browsers send in ``Origin``; ValidationError otherwise."""
    raw = value.strip().rstrip("/")
    parts = urlsplit(raw)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.path or parts.query or parts.fragment:
        raise ValidationError({"origins": f"{value!r} is not an origin such as https://app.example (no path)."})
    try:
        port = parts.port
    except ValueError:
        raise ValidationError({"origins": f"{value!r} has an invalid port."}) from None
    default = {"http": 80, "https": 443}[parts.scheme]
    host = parts.hostname.lower()
    if ":" in host:  # an IPv6 literal
        host = f"[{host}]"
    return f"{parts.scheme}://{host}" + (f":{port}" if port and port != default else "")


def clean_origins(values: Iterable[str]) -> list[str]:
    cleaned = sorted({clean_origin(v) for v in values if v and v.strip()})
    if not cleaned:
        raise ValidationError({"origins": "Name at least one origin the widget is embedded on."})
    return cleaned


def clean_categories(values: Iterable[str]) -> list[str]:
    cleaned: list[str] = []
    for v in values:
        v = " ".join((v or "").split())
        if not v:
            continue
        if len(v) > 100:
            raise ValidationError({"categories": f"A category has at most 100 characters: {v[:40]}…"})
        if v not in cleaned:
            cleaned.append(v)
    return cleaned


@transaction.atomic
def widget_key_create(
    *,
    name: str,
    source: str,
    origins: Iterable[str],
    categories: Iterable[str] | None = None,
    rate_per_minute: int = 120,
    created_by: AbstractBaseUser | None = None,
) -> WidgetKey:
    name = name.strip()
    if not name:
        raise ValidationError({"name": "Give the key a name."})
    sources = clean_sources([source])
    if len(sources) != 1:
        raise ValidationError({"source": "A widget key writes feedback for exactly one source."})
    if rate_per_minute < 1:
        raise ValidationError({"rate_per_minute": "Allow at least one request a minute."})
    row = WidgetKey(
        name=name,
        key=KEY_PREFIX + secrets.token_urlsafe(18),
        source=sources[0],
        origins=clean_origins(origins),
        rate_per_minute=rate_per_minute,
        created_by=created_by,
    )
    if categories is not None:
        row.categories = clean_categories(categories)
    row.save()
    return row


@transaction.atomic
def widget_key_revoke(*, key_id: int) -> WidgetKey:
    row = WidgetKey.objects.select_for_update().get(pk=key_id)
    if row.revoked_at is None:
        row.revoked_at = timezone.now()
        row.save(update_fields=["revoked_at"])
    forget(row.key)
    return row


def forget(key: str) -> None:
    _key_cache.pop(key, None)


def clear_key_cache() -> None:
    _key_cache.clear()


def active_key(key: str) -> WidgetKey | None:
    """The active key row for ``key`` (from a short-lived per-process cache), or None."""
    if not key.startswith(KEY_PREFIX) or len(key) > 64:
        return None
    now = time.monotonic()
    cached = _key_cache.get(key)
    if cached is not None and now - cached[0] < KEY_CACHE_SECONDS:
        row = cached[1]
    else:
        row = WidgetKey.objects.filter(key=key).first()
        if len(_key_cache) > 1000:
            _key_cache.clear()
        _key_cache[key] = (now, row)
    return row if row is not None and row.is_active else None


def origin_allowed(row: WidgetKey, origin: str | None) -> bool:
    """Whether a request with ``Origin: origin`` may use ``row``."""
    if not origin:
        return False
    try:
        return clean_origin(origin) in row.origins
    except ValidationError:
        return False
