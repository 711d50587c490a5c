"""API tokens: creation, revocation and ``Authorization: Bearer`` authentication for the JSON API.

A token reads ``fh_<random>``; only its sha256 is stored (a random 256-bit secret needs no slow hash), so a
database leak gives no usable token. API views are decorated with ``token_required(scope)``: it exempts them from
the login middleware and CSRF (no cookies are involved) and answers 401 (with ``WWW-Authenticate: Bearer``) for a
missing, unknown, expired or revoked token and 403 for a token without the scope, always as JSON.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
import time
from collections.abc import Callable, Iterable
from functools import wraps

from django.contrib.auth.decorators import login_not_required
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import transaction
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt

from feedbackhub.models import ApiScope, ApiToken, RecallGate

TOKEN_PREFIX = "fh_"  # noqa: S105 (a public marker, not a secret)
PREFIX_LENGTH = len(TOKEN_PREFIX) + 8
#: ``last_used_at`` is written at most this often per token, so a busy client does not turn every read into a write.
LAST_USED_RESOLUTION = dt.timedelta(minutes=1)
#: A process keeps a token row it has read for this long, so a busy client's requests skip the look-up. A revocation
#: or scope change made elsewhere takes effect within this time (at once in the process that revokes).
TOKEN_CACHE_SECONDS = 10.0
_token_cache: dict[str, tuple[float, ApiToken]] = {}
#: Scopes whose tokens act for apps: they read or write only their sources' data.
SOURCE_BOUND_SCOPES = frozenset({ApiScope.RECALL, ApiScope.INGEST})


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _clean_scopes(scopes: Iterable[str]) -> list[str]:
    cleaned = sorted(set(scopes))
    unknown = [s for s in cleaned if s not in ApiScope.values]
    if unknown:
        known = ", ".join(ApiScope.values)
        raise ValidationError({"scopes": f"Unknown scope(s) {', '.join(unknown)}; known: {known}."})
    if not cleaned:
        raise ValidationError({"scopes": "Give at least one scope."})
    return cleaned


def clean_sources(sources: Iterable[str]) -> list[str]:
    """Source names stripped, without blanks and duplicates, sorted."""
    cleaned = sorted({s.strip() for s in sources if s and s.strip()})
    too_long = [s for s in cleaned if len(s) > 100]
    if too_long:
        raise ValidationError({"sources": f"A source name has at most 100 characters: {too_long[0][:40]}…"})
    return cleaned


def parse_dataset_spec(spec: str) -> tuple[str, int | None]:
    """``NAME``, ``NAME@latest`` or ``NAME@N`` as (name, version number or None for the newest cut version)."""
    name, at, version = spec.strip().rpartition("@")
    if not at:
        name, version = version, ""
    name, version = name.strip(), version.strip().lower()
    if not name:
        raise ValidationError({"gate_dataset": "Name the dataset: NAME, NAME@latest or NAME@3."})
    if version in ("", "latest"):
        return name, None
    if not (version.isascii() and version.isdigit()) or int(version) < 1:
        raise ValidationError({"gate_dataset_version": f"{version!r} is not a version number (1, 2, …) or 'latest'."})
    return name, int(version)


def clean_access(
    *,
    scopes: Iterable[str],
    sources: Iterable[str],
    all_sources: bool,
    gate: str,
    gate_dataset: str = "",
    gate_dataset_version: int | None = None,
) -> dict:
    """The token fields that decide what it sees, checked together: a recall token needs a source or the
    all-sources grant (else it would see nothing), the dataset gate needs a dataset."""
    cleaned = {
        "sources": clean_sources(sources),
        "all_sources": bool(all_sources),
        "gate": gate,
        "gate_dataset": gate_dataset.strip(),
        "gate_dataset_version": gate_dataset_version,
    }
    if gate not in RecallGate.values:
        raise ValidationError({"gate": f"Unknown gate {gate!r}; one of {', '.join(RecallGate.values)}."})
    if gate == RecallGate.DATASET:
        if not cleaned["gate_dataset"]:
            raise ValidationError({"gate_dataset": "The dataset gate needs a dataset."})
    else:
        cleaned["gate_dataset"], cleaned["gate_dataset_version"] = "", None
    if set(scopes) & SOURCE_BOUND_SCOPES and not cleaned["sources"] and not cleaned["all_sources"]:
        raise ValidationError({"sources": "Bind the token to at least one source, or grant it all sources."})
    return cleaned


@transaction.atomic
def api_token_create(
    *,
    name: str,
    scopes: Iterable[str],
    created_by: AbstractBaseUser | None = None,
    expires_at: dt.datetime | None = None,
    sources: Iterable[str] = (),
    all_sources: bool = False,
    gate: str = RecallGate.FOUR_EYES,
    gate_dataset: str = "",
    gate_dataset_version: int | None = None,
) -> tuple[ApiToken, str]:
    """Create a token; returns the row and the secret token, which exists nowhere else afterwards."""
    name = name.strip()
    if not name:
        raise ValidationError({"name": "Give the token a name."})
    scopes = _clean_scopes(scopes)
    access = clean_access(scopes=scopes, sources=sources, all_sources=all_sources, gate=gate,
                          gate_dataset=gate_dataset, gate_dataset_version=gate_dataset_version)
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = ApiToken.objects.create(
        name=name,
        prefix=token[:PREFIX_LENGTH],
        digest=token_digest(token),
        scopes=scopes,
        created_by=created_by,
        expires_at=expires_at,
        **access,
    )
    return row, token


def api_token_forget(row: ApiToken) -> None:
    """Drop ``row`` from this process's cache after a change (other processes follow within TOKEN_CACHE_SECONDS)."""
    _token_cache.pop(row.digest, None)


@transaction.atomic
def api_token_revoke(*, token_id: int) -> ApiToken:
    row = ApiToken.objects.select_for_update().get(pk=token_id)
    if row.revoked_at is None:
        row.revoked_at = timezone.now()
        row.save(update_fields=["revoked_at"])
    _token_cache.pop(row.digest, None)
    return row


def clear_token_cache() -> None:
    _token_cache.clear()


def _token_row(digest: str) -> ApiToken | None:
    """The token row with ``digest``, from this process's short-lived cache or the database (unknown digests are
    never cached, so a new token works at once)."""
    now = time.monotonic()
    cached = _token_cache.get(digest)
    if cached is not None and now - cached[0] < TOKEN_CACHE_SECONDS:
        return cached[1]
    row = ApiToken.objects.filter(digest=digest).first()
    if row is None:
        _token_cache.pop(digest, None)
        return None
    if len(_token_cache) > 1000:  # bounded: forget everything rather than grow with every token ever seen
        _token_cache.clear()
    _token_cache[digest] = (now, row)
    return row


class TokenError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def authenticate(authorization: str | None, *, scope: str) -> ApiToken:
    """The active token named by an ``Authorization`` header value that holds ``scope``; else ``TokenError``."""
    scheme, _, value = (authorization or "").partition(" ")
    value = value.strip()
    if scheme.lower() != "bearer" or not value:
        raise TokenError(401, "missing_token", "Send an API token as 'Authorization: Bearer <token>'.")
    row = _token_row(token_digest(value))
    if row is None:
        raise TokenError(401, "invalid_token", "Unknown API token.")
    if row.revoked_at is not None:
        raise TokenError(401, "invalid_token", "This API token was revoked.")
    now = timezone.now()
    if row.expires_at is not None and row.expires_at <= now:
        raise TokenError(401, "invalid_token", "This API token has expired.")
    if scope not in row.scopes:
        raise TokenError(403, "insufficient_scope", f"This API token lacks the '{scope}' scope.")
    if row.last_used_at is None or now - row.last_used_at >= LAST_USED_RESOLUTION:
        ApiToken.objects.filter(pk=row.pk).update(last_used_at=now)
        row.last_used_at = now
    return row


def token_covers_source(token: ApiToken, source: str) -> bool:
    """Whether ``token`` may read or write data of conversation source ``source``."""
    return token.all_sources or source in token.sources


def json_error(status: int, code: str, message: str, **extra) -> JsonResponse:
    return JsonResponse({"error": {"code": code, "message": message, **extra}}, status=status)


def token_required(scope: str) -> Callable[[Callable[..., HttpResponse]], Callable[..., HttpResponse]]:
    """Decorate an API view: token auth with ``scope``; ``request.api_token`` is the token row."""

    def decorator(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        @wraps(view)
        def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
            try:
                request.api_token = authenticate(  # type: ignore[attr-defined]
                    request.headers.get("Authorization"), scope=scope
                )
            except TokenError as exc:
                response = json_error(exc.status, exc.code, exc.message)
                error = "invalid_token" if exc.status == 401 else "insufficient_scope"
                challenge = f'Bearer realm="feedbackhub", scope="{scope}"'
                if exc.code != "missing_token":
                    challenge += f', error="{error}"'
                response["WWW-Authenticate"] = challenge
                return response
            return view(request, *args, **kwargs)

        return csrf_exempt(login_not_required(wrapper))

    return decorator
