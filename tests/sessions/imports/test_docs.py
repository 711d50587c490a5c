"""The documented examples import cleanly and agree with the JSON Schema."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
from django.conf import settings

from sessions.imports.formats import detect_format
from sessions.models import ImportStatus
from sessions.services import import_file
from tests.sessions.imports.conftest import conversation

DOCS = Path(settings.BASE_DIR) / "docs"
SCHEMA = json.loads((DOCS / "schemas/feedbackhub-session.schema.json").read_text())
EXAMPLES = {"native.jsonl": "native", "openai.jsonl": "openai", "sharegpt.json": "sharegpt", "turns.csv": "csv"}


def validator() -> jsonschema.Draft202012Validator:
    jsonschema.Draft202012Validator.check_schema(SCHEMA)
    return jsonschema.Draft202012Validator(SCHEMA)


@pytest.mark.django_db
@pytest.mark.parametrize(("name", "fmt"), EXAMPLES.items())
def test_examples_are_detected_and_import_without_rejections(name, fmt):
    path = DOCS / "examples" / name
    assert detect_format(path) == fmt
    batch = import_file(path=path, source="docs")
    assert batch.status == ImportStatus.DONE, (batch.error, list(batch.rejections.values_list("line", "reason")))
    assert batch.conversations_created == batch.records_read > 0


def test_native_examples_match_the_schema():
    v = validator()
    for line in (DOCS / "examples/native.jsonl").read_text().splitlines():
        v.validate(json.loads(line))
    v.validate(conversation(turns=4))


@pytest.mark.django_db
@pytest.mark.parametrize(
    "change",
    [
        lambda r: r.pop("id"),
        lambda r: r.update(turns=[]),
        lambda r: r.update(environment="staging"),
        lambda r: r["turns"][0].update(role="robot"),
        lambda r: r["turns"][1].update(latency_ms=-1),
        lambda r: r["turns"][1].update(confidence=1.5),
        lambda r: r["turns"][1].update(feedback=[{"type": "rating"}]),
        lambda r: r["turns"][1].update(feedback=[{"type": "rating", "rating": 6}]),
        lambda r: r["turns"][1].update(feedback=[{"type": "smile"}]),
        lambda r: r["turns"][1]["context"].update(tool_calls=[{"id": "x"}]),
    ],
)
def test_records_the_schema_refuses_are_rejected_by_the_importer(write, change):
    record = conversation(turns=2)
    change(record)
    assert not validator().is_valid(record)
    batch = import_file(path=write("one.jsonl", [record]), source="s", format="native")
    assert batch.records_rejected == 1
