"""Exports with the context the reply depended on (system prompt, retrieved documents, tool calls and results) and
with private data scrubbed, on a real-shaped record, each format read as its consumer reads it."""

from __future__ import annotations

import csv
import io
import json
import zipfile

import pytest
from django.core.exceptions import PermissionDenied
from django.urls import reverse

from annotations import services as review
from annotations.curation import exporters, services
from annotations.curation.models import ExportJob, VersionExample
from sessions.models import Conversation, Turn, TurnRole
from tests.annotations.curation.conftest import approve

pytestmark = pytest.mark.django_db

SYSTEM = "You are Acme Bank's support assistant. Use the tools; never guess balances."
QUESTION = "Why was my card charged twice? Reach me at jane.doe@example.com or +1 415 555 2671."
DOCS = [
    {"id": "kb-12", "score": 0.91, "title": "Duplicate charges", "text": "Pending holds drop off within 3 days."},
    {"id": "kb-40", "score": 0.74, "title": "Refunds", "text": "Refunds post in 5-7 business days."},
]
CALL = {"id": "call_9", "name": "lookup_transactions", "arguments": {"card": "4111 1111 1111 1111", "days": 7},
        "result": "2 transactions: 42.00 settled, 42.00 pending hold"}
ORIGINAL = "You were charged twice; I have refunded 42.00."
FIXED = ("One of the two 42.00 charges is a pending hold that drops off within 3 days; "
         "card 4111 1111 1111 1111 was charged once. Questions: support@acme.example.")
PRIVATE = ("jane.doe@example.com", "415 555 2671", "4111 1111 1111 1111", "support@acme.example")


@pytest.fixture
def banking(dataset, expert, moderator):
    conversation = Conversation.objects.create(source="tests", external_id="bank-1", content_hash="b" * 64,
                                               title="Double charge", model_version="gpt-bank-1",
                                               environment="prod")
    Turn.objects.create(conversation=conversation, position=0, role=TurnRole.USER, content=QUESTION)
    turn = Turn.objects.create(conversation=conversation, position=1, role=TurnRole.ASSISTANT, content=ORIGINAL,
                               system_prompt=SYSTEM, retrieved_documents=DOCS, tool_calls=[CALL])
    correction = approve(turn, expert, text=FIXED, rationale="A hold is not a charge.")
    services.examples_add(actor=moderator, dataset=dataset, correction_ids=[correction.pk])
    example = dataset.examples.get()
    services.example_review(actor=expert, example_id=example.pk, decision="approve")
    return dataset


def export(format: str, **source) -> tuple[bytes, exporters.ExportSource]:  # noqa: A002
    out = io.BytesIO()
    src = exporters.ExportSource(**source)
    exporters.write(exporters.get(format), src, out)
    return out.getvalue(), src


def assert_scrubbed(text: str) -> None:
    for secret in PRIVATE:
        assert secret not in text
    assert "[EMAIL]" in text and "[PHONE]" in text and "[CARD]" in text


def expected_messages() -> list[dict]:
    system = (
        f"{SYSTEM}\n\nRetrieved documents:\n\n[1] Duplicate charges (id kb-12, score 0.91)\n"
        "Pending holds drop off within 3 days.\n\n"
        "[2] Refunds (id kb-40, score 0.74)\nRefunds post in 5-7 business days."
    )
    return [
        {"role": "system", "content": system},
        {"role": "user", "content": "Why was my card charged twice? Reach me at [EMAIL] or [PHONE]."},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_9", "type": "function",
             "function": {"name": "lookup_transactions", "arguments": '{"card":"[CARD]","days":7}'}}]},
        {"role": "tool", "tool_call_id": "call_9", "content": CALL["result"]},
        {"role": "assistant", "content": FIXED.replace("4111 1111 1111 1111", "[CARD]").replace(
            "support@acme.example", "[EMAIL]")},
    ]


def test_openai_lines_carry_documents_tool_calls_and_results_in_order(banking):
    data, source = export("openai", dataset=banking)
    assert_scrubbed(data.decode())
    [row] = [json.loads(line) for line in data.decode().splitlines()]
    assert row == {"messages": expected_messages()}
    # The message schema of OpenAI's chat fine-tuning format.
    calls: set[str] = set()
    for message in row["messages"]:
        assert message["role"] in {"system", "user", "assistant", "tool"}
        if message["role"] == "assistant" and "tool_calls" in message:
            for call in message["tool_calls"]:
                assert call["type"] == "function" and isinstance(call["function"]["arguments"], str)
                json.loads(call["function"]["arguments"])
                calls.add(call["id"])
        elif message["role"] == "tool":
            assert message["tool_call_id"] in calls and isinstance(message["content"], str)
        else:
            assert isinstance(message["content"], str)
    assert row["messages"][-1]["role"] == "assistant" and "tool_calls" not in row["messages"][-1]
    assert source.tally.as_dict() == {"CARD": 2, "EMAIL": 2, "PHONE": 1}


def test_dpo_both_forms_load_with_datasets(banking, tmp_path):
    datasets = pytest.importorskip("datasets")
    text, _ = export("dpo", dataset=banking)
    chat, _ = export("dpo_chat", dataset=banking)
    for data in (text, chat):
        assert_scrubbed(data.decode())
    (tmp_path / "text.jsonl").write_bytes(text)
    (tmp_path / "chat.jsonl").write_bytes(chat)
    row = datasets.load_dataset("json", data_files=str(tmp_path / "text.jsonl"), split="train")[0]
    assert row["prompt"].startswith(f"System: {SYSTEM}\n\nRetrieved documents:")
    assert ('Assistant: [tool call] lookup_transactions({"card":"[CARD]","days":7})\n\n'
            f"Tool: {CALL['result']}\n\nAssistant:") in row["prompt"]
    assert row["rejected"] == ORIGINAL
    pair = json.loads(chat)
    assert pair["prompt"] == expected_messages()[:-1]
    assert pair["chosen"] == [expected_messages()[-1]] and pair["rejected"] == [{"role": "assistant",
                                                                                   "content": ORIGINAL}]
    loaded = datasets.load_dataset("json", data_files=str(tmp_path / "chat.jsonl"), split="train")[0]
    assert [m["role"] for m in loaded["prompt"]] == ["system", "user", "assistant", "tool"]


def test_hf_folder_loads_with_the_context_columns(banking, tmp_path):
    datasets = pytest.importorskip("datasets")
    data, _ = export("hf", dataset=banking)
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        archive.extractall(tmp_path)
        assert_scrubbed(archive.read(f"{banking.slug}/data/train.jsonl").decode())
    row = datasets.load_dataset(str(tmp_path / banking.slug))["train"][0]
    assert [d["id"] for d in row["retrieved_documents"]] == ["kb-12", "kb-40"]
    assert row["tool_calls"][0]["name"] == "lookup_transactions"
    assert row["tool_calls"][0]["arguments"] == '{"card":"[CARD]","days":7}'


def test_csv_and_w3c_are_scrubbed_too(banking, moderator):
    data, _ = export("csv", dataset=banking)
    text = data.decode("utf-8-sig")
    assert_scrubbed(text)
    [row] = list(csv.DictReader(io.StringIO(text)))
    assert "Retrieved documents:" in row["system_prompt"] and "[tool call] lookup_transactions" in row["context"]
    turn = Turn.objects.get(position=1, conversation__external_id="bank-1")
    review.annotation_create(actor=moderator, turn=turn, body="Mail me: jane.doe@example.com")
    w3c, _ = export("w3c", dataset=banking)
    assert "jane.doe@example.com" not in w3c.decode() and "[EMAIL]" in w3c.decode()


def test_versions_keep_the_original_text_and_export_it_scrubbed(banking, expert, settings, tmp_path):
    version = services.version_cut(actor=expert, dataset=banking)
    row = VersionExample.objects.get(version=version)
    assert "jane.doe@example.com" in row.messages[0]["content"] and row.tool_calls == [CALL]
    assert row.retrieved_documents == DOCS
    data, _ = export("openai", version=version)
    assert_scrubbed(data.decode())
    settings.CURATION_EXPORT_DIR = tmp_path
    job = services.export_job_create(actor=expert, format="openai", dataset=banking, version=version)
    job = services.export_job_run(job_id=job.pk)
    assert job.scrub and job.scrub_counts == {"CARD": 2, "EMAIL": 2, "PHONE": 1}
    assert ExportJob.objects.get(pk=job.pk).scrubbed_total == 5


def test_only_admins_export_unscrubbed(banking, expert, django_user_model):
    with pytest.raises(PermissionDenied):
        services.export_job_create(actor=expert, format="openai", dataset=banking, scrub=False)
    data, _ = export("openai", dataset=banking, scrub=False)
    assert "jane.doe@example.com" in data.decode()


def test_old_examples_without_context_export_as_before(curated):
    data, _ = export("openai", dataset=curated)
    for line in data.decode().splitlines():
        assert all(set(m) == {"role", "content"} for m in json.loads(line)["messages"])


def test_export_panel_and_finished_job_show_the_scrub_badge(client, banking, expert, settings, tmp_path):
    client.force_login(expert)
    page = client.get(banking.get_absolute_url()).content.decode()
    assert 'hx-get="/curation/d/geography-fixes/scrub"' in page
    badge = client.get(reverse("curation:scrub_summary", args=[banking.slug]), headers={"HX-Request": "true"})
    assert "5 items scrubbed: 2 CARD, 2 EMAIL, 1 PHONE" in badge.content.decode()
    settings.CURATION_EXPORT_DIR = tmp_path
    job = services.export_job_create(actor=expert, format="dpo_chat", dataset=banking)
    services.export_job_run(job_id=job.pk)
    assert "5 items scrubbed: 2 CARD, 2 EMAIL, 1 PHONE" in client.get(job.get_absolute_url()).content.decode()
    assert "5 scrubbed" in client.get(banking.get_absolute_url()).content.decode()
