"""W3C Web Annotation JSON-LD (https://www.w3.org/TR/annotation-model/): the review annotations as one
``AnnotationCollection`` whose first (and only) ``AnnotationPage`` holds every annotation.

Each annotation targets its assistant turn (a ``SpecificResource`` whose ``source`` is the turn's URL in the review
workspace) with a ``TextQuoteSelector`` and a ``TextPositionSelector`` (Unicode code points, as the model says).
An orphaned annotation, whose span no longer matches the reply, keeps only its quote. Bodies are ``TextualBody``:
the comment (purpose ``commenting``), each tag (``tagging``) and a suggested replacement (``editing``).
Every annotation carries its own ``@context`` too, so each one stands alone when taken out of the collection.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import orjson

from annotations.curation.exporters.base import FLUSH_BYTES, ExportSource, Progress
from annotations.curation.selectors import ORPHANED, AnnotationRecord
from annotations.models import AnnotationKind

CONTEXT = "http://www.w3.org/ns/anno.jsonld"


def _when(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def annotation(record: AnnotationRecord, source: ExportSource) -> dict:
    base = source.base_url.rstrip("/")
    is_suggestion = record.kind == AnnotationKind.SUGGESTION
    bodies: list[dict] = []
    if record.body:
        bodies.append({"type": "TextualBody", "value": record.body, "format": "text/plain", "purpose": "commenting"})
    for tag in record.tags:
        bodies.append({"type": "TextualBody", "value": tag, "purpose": "tagging"})
    if is_suggestion:
        bodies.append(
            {"type": "TextualBody", "value": record.replacement, "format": "text/plain", "purpose": "editing"}
        )
    target: dict = {"type": "SpecificResource", "source": source.turn_url(record.conversation_id, record.turn_id)}
    if record.start is not None:
        selectors: list[dict] = [
            {"type": "TextQuoteSelector", "exact": record.exact, "prefix": record.prefix, "suffix": record.suffix}
        ]
        if record.anchor_state != ORPHANED:
            selectors.append({"type": "TextPositionSelector", "start": record.start, "end": record.end})
        target["selector"] = selectors
    out: dict = {
        "@context": CONTEXT,
        "id": f"{base}/review/a/{record.id}/",
        "type": "Annotation",
        "motivation": "editing" if is_suggestion else ("commenting" if record.body else "tagging"),
        "created": _when(record.created_at),
        "modified": _when(record.updated_at),
        "creator": {"type": "Person", "nickname": record.author},
    }
    if bodies:
        out["body"] = bodies
    out["target"] = target
    return out


class W3CExporter:
    format = "w3c"
    extension = ".jsonld"
    content_type = "application/ld+json; charset=utf-8"

    def count(self, source: ExportSource) -> int:
        return source.annotation_count()

    def collection_id(self, source: ExportSource) -> str:
        base = source.base_url.rstrip("/")
        return f"{base}/curation/annotations/{source.label}.jsonld"

    def chunks(self, source: ExportSource, *, progress: Progress | None = None) -> Iterator[bytes]:
        collection_id = self.collection_id(source)
        head = {
            "@context": CONTEXT,
            "id": collection_id,
            "type": "AnnotationCollection",
            "label": f"FeedbackHub annotations: {source.label}",
        }
        page = {"id": f"{collection_id}#page-1", "type": "AnnotationPage", "partOf": collection_id, "startIndex": 0}
        # The collection's keys are written by hand around the streamed items; "total" comes last, once known.
        yield orjson.dumps(head)[:-1] + b',"first":' + orjson.dumps(page)[:-1] + b',"items":[\n'
        buffer: list[bytes] = []
        size = n = 0
        for record in source.annotations():
            item = orjson.dumps(annotation(record, source))
            buffer.append(item if n == 0 else b",\n" + item)
            size += len(item)
            n += 1
            if progress is not None and n % 1000 == 0:
                progress(n)
            if size >= FLUSH_BYTES:
                yield b"".join(buffer)
                buffer.clear()
                size = 0
        buffer.append(b"\n]}," + b'"total":' + str(n).encode() + b"}\n")
        yield b"".join(buffer)
        if progress is not None:
            progress(n)


EXPORTER = W3CExporter()
