"""The export formats, checked the way their consumers read them: ``datasets`` for DPO pairs and the hf folder,
the W3C Web Annotation MUST schema for the JSON-LD, a spreadsheet's reading of CSV cells."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import zipfile
from pathlib import Path

import jsonschema
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from annotations import anchoring
from annotations import services as review
from annotations.curation import exporters, services
from annotations.curation.exporters import csv as csv_export
from annotations.curation.exporters import dpo, hf
from annotations.models import Annotation, AnnotationKind
from tests.annotations.curation.conftest import FIXED, REPLY, SYSTEM, make_reply, tag_span

pytestmark = pytest.mark.django_db
SCHEMA_PATH = Path(__file__).resolve().parents[3] / "docs" / "schemas" / "web-annotation-musts.schema.json"


def export(format: str, **source) -> bytes:  # noqa: A002
    out = io.BytesIO()
    exporters.write(exporters.get(format), exporters.ExportSource(**source), out)
    return out.getvalue()


def lines(data: bytes) -> list[dict]:
    return [json.loads(line) for line in data.decode("utf-8").splitlines()]


def test_openai_chat_lines_end_with_the_corrected_reply(curated):
    rows = lines(export("openai", dataset=curated))
    assert len(rows) == 2  # the proposed example is not exported
    messages = rows[0]["messages"]
    assert messages[0] == {"role": "system", "content": SYSTEM}
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user", "assistant"]
    assert messages[-2] == {"role": "user", "content": "Where is the Eiffel Tower?"}
    assert messages[-1] == {"role": "assistant", "content": FIXED}
    assert all(set(m) == {"role", "content"} for m in messages)


def test_dpo_pairs_load_with_datasets_and_have_what_trl_needs(curated, tmp_path):
    datasets = pytest.importorskip("datasets")
    path = tmp_path / "pairs.jsonl"
    path.write_bytes(export("dpo", dataset=curated))
    ds = datasets.load_dataset("json", data_files=str(path), split="train")
    assert ds.num_rows == 2
    assert {"prompt", "chosen", "rejected"} <= set(ds.column_names)
    row = ds[0]
    assert row["chosen"] == FIXED and row["rejected"] == REPLY
    assert row["prompt"].startswith(f"System: {SYSTEM}\n\nUser: Hello 0")
    assert row["prompt"].endswith("User: Where is the Eiffel Tower?\n\nAssistant:")


def test_dpo_conversational_form_loads_as_message_lists(curated, tmp_path):
    datasets = pytest.importorskip("datasets")
    path = tmp_path / "pairs.jsonl"
    with path.open("wb") as out:
        exporters.write(dpo.MESSAGES_EXPORTER, exporters.ExportSource(dataset=curated), out)
    row = datasets.load_dataset("json", data_files=str(path), split="train")[0]
    assert row["prompt"][-1] == {"role": "user", "content": "Where is the Eiffel Tower?"}
    assert row["chosen"] == [{"role": "assistant", "content": FIXED}]
    assert row["rejected"] == [{"role": "assistant", "content": REPLY}]


def test_hf_folder_loads_with_load_dataset_and_its_card_has_the_counts(curated, tmp_path):
    datasets = pytest.importorskip("datasets")
    version = services.version_cut(actor=curated.created_by, dataset=curated, note="first cut")
    folder = tmp_path / "geo"
    hf.EXPORTER.write_folder(exporters.ExportSource(version=version), folder)
    ds = datasets.load_dataset(str(folder))["train"]
    assert ds.num_rows == 2
    assert ds[0]["corrected"] == FIXED and ds[0]["original"] == REPLY
    assert ds[0]["tags"] == ["factually incorrect"]
    assert ds[0]["messages"][0] == {"role": "user", "content": "Hello 0"}
    assert ds.features["metadata"]["turn_id"].dtype == "int64"
    card = (folder / "README.md").read_text()
    assert card.startswith("---\npretty_name: \"Geography fixes\"\nlicense: other")
    assert "num_examples: 2" in card and f"`{version.sha256}`" in card and "| Version | 1 |" in card
    # The canonical rows are what the version's hash covers.

    assert hashlib.sha256((folder / "data" / "train.jsonl").read_bytes()).hexdigest() == version.sha256


def test_hf_zip_holds_the_same_folder(curated, tmp_path):
    datasets = pytest.importorskip("datasets")
    data = export("hf", dataset=curated)
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        assert sorted(archive.namelist()) == ["geography-fixes/README.md", "geography-fixes/data/train.jsonl"]
        archive.extractall(tmp_path)
    assert datasets.load_dataset(str(tmp_path / "geography-fixes"))["train"].num_rows == 2


def test_w3c_annotations_pass_the_web_annotation_must_schema(curated, moderator, expert):
    turn = curated.examples.order_by("id").first().turn
    tag_span(turn, expert, "1889", body="", tag_names=("too vague", "incomplete"))
    start = turn.content.index("Berlin")

    review.annotation_create(
        actor=expert, turn=turn, kind=AnnotationKind.SUGGESTION, start=start, end=start + 6, exact="Berlin",
        text_hash=anchoring.text_hash(turn.content), replacement="Paris",
    )
    review.annotation_create(actor=moderator, turn=turn, body="Whole reply: <b>too</b> short")
    collection = json.loads(export("w3c", dataset=curated, base_url="https://fh.example"))
    assert collection["@context"] == "http://www.w3.org/ns/anno.jsonld"
    assert collection["type"] == "AnnotationCollection"
    items = collection["first"]["items"]
    assert collection["total"] == len(items) == 4
    schema = json.loads(SCHEMA_PATH.read_text())
    validator = jsonschema.Draft7Validator(schema, format_checker=jsonschema.FormatChecker())
    for item in items:
        errors = [e.message for e in validator.iter_errors(item)]
        assert not errors, (item, errors)
    by_motivation = {item["motivation"]: item for item in items}
    comment = next(i for i in items if i["body"][0].get("value") == "Wrong city")
    assert comment["body"] == [
        {"type": "TextualBody", "value": "Wrong city", "format": "text/plain", "purpose": "commenting"},
        {"type": "TextualBody", "value": "factually incorrect", "purpose": "tagging"},
    ]
    assert comment["target"]["source"] == f"https://fh.example/review/c/{turn.conversation_id}/#turn-{turn.pk}"
    quote, position = comment["target"]["selector"]
    assert quote == {"type": "TextQuoteSelector", "exact": "Berlin", "prefix": "The Eiffel Tower is in ",
                     "suffix": ". It was completed in 1889."}
    assert position == {"type": "TextPositionSelector", "start": 23, "end": 29}
    assert {b["purpose"] for b in by_motivation["tagging"]["body"]} == {"tagging"}
    assert by_motivation["editing"]["body"][-1] == {"type": "TextualBody", "value": "Paris", "format": "text/plain",
                                                    "purpose": "editing"}
    whole = by_motivation["commenting"] if "selector" not in by_motivation["commenting"]["target"] else None
    assert any("selector" not in i["target"] for i in items) and (whole is None or whole["target"]["source"])


def test_the_must_schema_rejects_what_the_model_forbids():
    schema = json.loads(SCHEMA_PATH.read_text())
    validator = jsonschema.Draft7Validator(schema, format_checker=jsonschema.FormatChecker())
    good = {"@context": "http://www.w3.org/ns/anno.jsonld", "id": "http://x.example/a/1", "type": "Annotation",
            "body": {"type": "TextualBody", "value": "hi"}, "target": "http://x.example/doc"}
    assert validator.is_valid(good)
    for broken in (
        {k: v for k, v in good.items() if k != "target"},
        {**good, "@context": "http://example.org/other"},
        {**good, "type": "Note"},
        {**good, "bodyValue": "both"},
        {**good, "created": "yesterday"},
        {**good, "target": {"type": "SpecificResource"}},
        {**good, "target": {"source": "http://x.example/doc",
                            "selector": {"type": "TextPositionSelector", "start": -1, "end": 3}}},
    ):
        assert not validator.is_valid(broken), broken


def test_w3c_export_of_one_dataset_leaves_out_other_replies_and_deleted_annotations(curated, moderator):
    other = make_reply(question="Unrelated?")
    tag_span(other, moderator, "Berlin", body="not in the dataset")
    turn = curated.examples.order_by("id").first().turn
    gone = tag_span(turn, moderator, "1889", body="deleted later")
    Annotation.objects.filter(pk=gone.pk).update(deleted_at=gone.created_at)
    items = json.loads(export("w3c", dataset=curated))["first"]["items"]
    assert [i["body"][0]["value"] for i in items] == ["Wrong city"]
    everything = json.loads(export("w3c"))["first"]["items"]
    assert len(everything) == 2


@pytest.mark.parametrize("value", ["=HYPERLINK(\"http://evil\")", "+1", "-2", "@SUM(A1)", "\tx", "\rx"])
def test_csv_escapes_cells_a_spreadsheet_would_run(value):
    assert csv_export.escape(value) == "'" + value
    assert csv_export.escape("plain = text") == "plain = text"


def test_csv_export_has_bom_header_and_escaped_cells(curated):
    data = export("csv", dataset=curated)
    assert data.startswith(b"\xef\xbb\xbf")
    rows = list(csv.DictReader(io.StringIO(data.decode("utf-8-sig"))))
    assert len(rows) == 2
    formula = rows[1]
    assert formula["original"] == "'@SUM(A1:A2) is 2"
    assert formula["corrected"] == "'-2 is wrong; it is 2"
    assert formula["rationale"] == "'+ sign"
    assert formula["context"] == "user: =1+1?"  # not at the start of the cell: left as is
    assert rows[0]["tags"] == "factually incorrect"
    for row in rows:
        for cell in row.values():
            assert not cell.startswith(("=", "+", "-", "@", "\t", "\r")), cell


def test_export_dataset_command_writes_every_format(curated, tmp_path):
    version = services.version_cut(actor=curated.created_by, dataset=curated)
    for fmt in ("openai", "dpo", "csv", "w3c"):
        out = tmp_path / f"out-{fmt}"
        call_command("export_dataset", "--format", fmt, "--dataset", curated.name, "--version", "1", str(out),
                     "--no-progress")
        assert out.read_bytes() == export(fmt, version=version)
    call_command("export_dataset", "--format", "hf", "--dataset", curated.name, str(tmp_path / "hf"), "--no-progress")
    assert (tmp_path / "hf" / "data" / "train.jsonl").exists() and (tmp_path / "hf" / "README.md").exists()


def test_export_dataset_command_names_a_missing_dataset_or_version(curated, tmp_path):

    with pytest.raises(CommandError, match="No dataset named 'nope'"):
        call_command("export_dataset", "--format", "openai", "--dataset", "nope", str(tmp_path / "x"))
    with pytest.raises(CommandError, match="has no version 9"):
        call_command("export_dataset", "--format", "openai", "--dataset", curated.name, "--version", "9",
                     str(tmp_path / "x"))
