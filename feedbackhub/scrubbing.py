"""One scrubber for private data in everything that leaves the building (recall answers, dataset exports).

``scrub(text)`` replaces e-mail addresses, phone numbers (found by ``phonenumbers``), payment card numbers (13-19
digits, Luhn-checked), IBANs (checksum-checked by ``python-stdnum``) and the patterns configured in
``SCRUB_PATTERNS`` with typed placeholders such as ``[EMAIL]`` and ``[CARD]``, and counts what it replaced, so the
places that show scrubbed text can say so (a badge and a count). A :class:`ScrubTally` adds the counts of many texts
up for an export or an answer.

Checksums keep false positives down: an order number or a timestamp is not a card unless its digits pass Luhn,
and phone numbers must be valid for their region (``SCRUB_PHONE_REGION`` for numbers written without ``+``).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import cache, lru_cache

import phonenumbers
from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver
from stdnum import iban, luhn

EMAIL_RE = re.compile(r"(?<![\w.+-])[\w.+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}(?![\w-])")
#: 13-19 digits, optionally grouped by single spaces or dashes, not part of a longer number.
CARD_RE = re.compile(r"(?<![\d-])\d(?:[ -]?\d){12,18}(?![\d-])")
IBAN_RE = re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}\b")
#: Phone search is the slow part: texts with fewer digits than the shortest valid number skip it.
_MIN_PHONE_DIGITS = 7
_DIGIT_RE = re.compile(r"\d")


@dataclass(frozen=True)
class Scrubbed:
    """Treat as read-only: results are cached and shared."""

    text: str
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def changed(self) -> bool:
        return bool(self.counts)


@dataclass
class ScrubTally:
    """Counts of placeholders put into a whole answer or export, by kind (``{"EMAIL": 3, "CARD": 1}``)."""

    counts: Counter = field(default_factory=Counter)

    def scrub(self, text: str) -> str:
        result = scrub(text)
        self.counts.update(result.counts)
        return result.text

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def as_dict(self) -> dict[str, int]:
        return dict(sorted(self.counts.items()))


def enabled() -> bool:
    return bool(getattr(settings, "SCRUB_ENABLED", True))


@cache
def _configured_patterns() -> tuple[tuple[str, re.Pattern[str]], ...]:
    patterns = getattr(settings, "SCRUB_PATTERNS", {}) or {}
    return tuple((name.upper(), re.compile(pattern)) for name, pattern in patterns.items())


@receiver(setting_changed)
def _forget_patterns(*, setting: str, **kwargs) -> None:
    if setting.startswith("SCRUB_"):
        _configured_patterns.cache_clear()
        _scrub.cache_clear()


def _replace(text: str, pattern: re.Pattern[str], label: str, counts: Counter, accept=None) -> str:
    def one(match: re.Match[str]) -> str:
        if accept is not None and not accept(match.group(0)):
            return match.group(0)
        counts[label] += 1
        return f"[{label}]"

    return pattern.sub(one, text)


def _is_card(candidate: str) -> bool:
    digits = re.sub(r"[ -]", "", candidate)
    return luhn.is_valid(digits) and len(set(digits)) > 1


def _is_iban(candidate: str) -> bool:
    return iban.is_valid(candidate)


def _phone_spans(text: str) -> Iterator[tuple[int, int]]:
    region = getattr(settings, "SCRUB_PHONE_REGION", "US") or None
    for match in phonenumbers.PhoneNumberMatcher(text, region, leniency=phonenumbers.Leniency.VALID):
        yield match.start, match.end


def _replace_phones(text: str, counts: Counter) -> str:
    if len(_DIGIT_RE.findall(text)) < _MIN_PHONE_DIGITS:
        return text
    spans = list(_phone_spans(text))
    if not spans:
        return text
    parts, last = [], 0
    for start, end in spans:
        parts.append(text[last:start])
        parts.append("[PHONE]")
        last = end
    parts.append(text[last:])
    counts["PHONE"] += len(spans)
    return "".join(parts)


def scrub(text: str) -> Scrubbed:
    """``text`` with private data replaced by typed placeholders, and the count per placeholder."""
    if not text or not enabled():
        return Scrubbed(text or "")
    return _scrub(text)


#: Recall answers the same cases again and again; phone search costs about 2 ms per reply with digits in it.
@lru_cache(maxsize=4096)
def _scrub(text: str) -> Scrubbed:
    counts: Counter = Counter()
    for name, pattern in _configured_patterns():
        text = _replace(text, pattern, name, counts)
    text = _replace(text, EMAIL_RE, "EMAIL", counts)
    text = _replace(text, IBAN_RE, "IBAN", counts, accept=_is_iban)
    text = _replace(text, CARD_RE, "CARD", counts, accept=_is_card)
    text = _replace_phones(text, counts)
    return Scrubbed(text, dict(counts))


def scrub_all(texts: Iterable[str]) -> tuple[list[str], dict[str, int]]:
    """Scrub several texts at once; returns them in order with the summed counts."""
    tally = ScrubTally()
    return [tally.scrub(t) for t in texts], tally.as_dict()
