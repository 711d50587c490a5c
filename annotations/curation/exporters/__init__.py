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

from annotations.curation.exporters import csv, dpo, hf, openai, w3c
from annotations.curation.exporters.base import Exporter, ExportSource, write

EXPORTERS: dict[str, Exporter] = {module.EXPORTER.format: module.EXPORTER for module in (openai, dpo, hf, w3c, csv)}


def get(format: str) -> Exporter:  # noqa: A002 (the CLI's and the model's name for it)
    try:
        return EXPORTERS[format]
    except KeyError:
        raise ValueError(f"Unknown export format {format!r}; use one of {', '.join(EXPORTERS)}.") from None


__all__ = ["EXPORTERS", "ExportSource", "Exporter", "get", "write"]
