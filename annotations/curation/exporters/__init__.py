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

from dataclasses import dataclass

from annotations.curation.exporters import csv, dpo, hf, openai, w3c
from annotations.curation.exporters.base import Exporter, ExportSource, write
from annotations.curation.models import Dataset

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
    """What the scrubber replaces in the approved examples of ``dataset`` as an export writes them now."""
    source = ExportSource(dataset=dataset)
    for _record in source.examples():
        pass
    return ScrubSummary(source.tally.as_dict())


__all__ = ["EXPORTERS", "ExportSource", "Exporter", "ScrubSummary", "get", "scrub_summary", "write"]
