"""Export formats, one module each, over one streaming interface (``base.Exporter``).

    from annotations.curation import exporters
    exporter = exporters.get("dpo")
    source = exporters.ExportSource(dataset=dataset, version=None, base_url="https://feedbackhub.example")
    with open("pairs.jsonl", "wb") as out:
        exporters.write(exporter, source, out)

An exporter yields ``bytes`` chunks from a source; ``write`` copies them to any binary file-like object, and the
browser streams the same chunks (``StreamingHttpResponse``). Memory stays at one chunk of database rows.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import cache
from django.db.models import Count, Max

from annotations.curation.exporters import csv, dpo, hf, openai, w3c
from annotations.curation.exporters.base import Exporter, ExportSource, write
from annotations.curation.models import Dataset, Example, ExampleStatus
from feedbackhub import scrubbing

logger = logging.getLogger(__name__)

EXPORTERS: dict[str, Exporter] = {
    exporter.format: exporter
    for exporter in (openai.EXPORTER, dpo.EXPORTER, dpo.MESSAGES_EXPORTER, hf.EXPORTER, w3c.EXPORTER, csv.EXPORTER)
}


def get(format: str) -> Exporter:  # noqa: A002 (the CLI's and the model's name for it)
    try:
        return EXPORTERS[format]
    except KeyError:
        raise ValueError(f"Unknown export format {format!r}; use one of {', '.join(EXPORTERS)}.") from None


@dataclass(frozen=True)
class ScrubSummary:
    counts: dict[str, int]

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    items = total


def scrub_summary(dataset: Dataset) -> ScrubSummary:
    """What the scrubber replaces in the approved examples of ``dataset`` as an export writes them now.

    Scrubbing every approved example costs about as much as an export, and the badge asks again after each review,
    so the result is cached under the approved set's state (count and latest change) and the scrub settings."""
    state = Example.objects.filter(dataset=dataset, status=ExampleStatus.APPROVED).aggregate(
        n=Count("id"), last=Max("updated_at")
    )
    settings_key = repr((scrubbing.enabled(), getattr(settings, "SCRUB_PATTERNS", {}),
                         getattr(settings, "SCRUB_PHONE_REGION", "")))
    key = "curation:scrub:" + hashlib.sha256(
        f"{dataset.pk}:{state['n']}:{state['last']}:{settings_key}".encode()
    ).hexdigest()[:32]
    try:
        counts = cache.get(key)
    except Exception:  # compute it uncached while the cache is down
        logger.warning("scrub summary cache unavailable", exc_info=True)
        counts = None
    if counts is None:
        source = ExportSource(dataset=dataset)
        for _record in source.examples():
            pass
        counts = source.tally.as_dict()
        try:
            cache.set(key, counts, timeout=24 * 3600)
        except Exception:
            logger.warning("scrub summary cache unavailable", exc_info=True)
    return ScrubSummary(counts)


__all__ = ["EXPORTERS", "ExportSource", "Exporter", "ScrubSummary", "get", "scrub_summary", "write"]
