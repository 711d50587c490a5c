"""OpenAI, ShareGPT and CSV importers, format detection and the JSON array reader."""

from __future__ import annotations

import gzip
import shutil

import orjson
import pytest

from sessions.imports import reader
from sessions.imports.errors import FileError
from sessions.imports.formats import detect_format
from sessions.imports.reader import ImportFile
from sessions.models import Conversation, FeedbackEvent, ImportStatus, Turn
from sessions.services import import_file
from tests.sessions.imports.conftest import SHAREGPT_DUMMY, conversation
from tests.shared_data import requires

# --- ShareGPT -------------------------------------------------------------------------------------------------


@requires(SHAREGPT_DUMMY)
@pytest.mark.django_db
def test_sharegpt_dummy_file_gives_500_conversations_and_again_changes_nothing():
    first = import_file(path=SHAREGPT_DUMMY, source="fastchat")
    assert first.status == ImportStatus.DONE, first.error
    assert (first.format, first.records_read, first.conversations_created) == ("sharegpt", 500, 500)
    rows = (Conversation.objects.count(), Turn.objects.count(), FeedbackEvent.objects.count())
    assert rows == (500, 2000, 0)
    conv = Conversation.objects.get(external_id="identity_0")
    assert conv.title == "Who are you?"
    assert list(conv.turns.values_list("role", flat=True)) == ["user", "assistant", "user", "assistant"]

    again = import_file(path=SHAREGPT_DUMMY, source="fastchat")
    assert (again.conversations_created, again.conversations_updated, again.conversations_unchanged) == (0, 0, 500)
    assert (Conversation.objects.count(), Turn.objects.count(), FeedbackEvent.objects.count()) == rows


@requires(SHAREGPT_DUMMY)
@pytest.mark.django_db
def test_sharegpt_gzip_copy_of_the_dummy_file(tmp_path):
    path = tmp_path / "dummy.json.gz"
    with open(SHAREGPT_DUMMY, "rb") as src, gzip.open(path, "wb") as dst:
        shutil.copyfileobj(src, dst)
    batch = import_file(path=path, source="fastchat")
    assert (batch.format, batch.conversations_created) == ("sharegpt", 500)


@pytest.mark.django_db
def test_sharegpt_jsonl_without_ids_is_idempotent_by_content(write):
    records = [
        {"conversations": [{"from": "system", "value": "Be brief."}, {"from": "human", "value": "hi"},
                           {"from": "gpt", "value": "hello"}], "lang": "en"},
        {"conversations": [{"from": "human", "value": "2+2?"}, {"from": "gpt", "value": "4"}]},
    ]  # fmt: skip
    path = write("chats.jsonl", records)
    assert import_file(path=path, source="s").conversations_created == 2
    assert import_file(path=path, source="s").conversations_unchanged == 2
    conv = Conversation.objects.get(title="hi")
    assert conv.external_id.startswith("sha256:")
    assert conv.metadata == {"lang": "en"}
    assert conv.turn_count == 2
    assert conv.turns.get(role="assistant").system_prompt == "Be brief."


@pytest.mark.django_db
def test_sharegpt_array_rejects_bad_elements_by_their_line(write):
    data = b"""[
  {"id": "a", "conversations": [{"from": "human", "value": "hi"}, {"from": "gpt", "value": "yo"}]},
  {"id": "b", "conversations": [{"from": "alien", "value": "zzz"}]},
  {"id": "c",
   "conversations": "nope"},
  {"id": "d", "conversations": [{"from": "human", "value": "[tricky] {\\"quoted\\"} ]"}]}
]
"""
    batch = import_file(path=write("arr.json", data), source="s")
    assert batch.format == "sharegpt"
    assert set(Conversation.objects.values_list("external_id", flat=True)) == {"a", "d"}
    assert Turn.objects.get(conversation__external_id="d").content == '[tricky] {"quoted"} ]'
    rejections = [(r.line, r.field) for r in batch.rejections.all()]
    assert rejections == [(3, "conversations[0].from"), (4, "conversations")]


@pytest.mark.django_db
def test_broken_json_array_fails_the_file_and_keeps_what_went_in(write):
    data = b'[{"id": "a", "conversations": [{"from": "human", "value": "hi"}]},\n{"id": "b", "conversations": ['
    batch = import_file(path=write("cut.json", data), source="s")
    assert batch.status == ImportStatus.FAILED
    assert "cut.json: line 2" in batch.error and "not closed" in batch.error
    assert Conversation.objects.filter(external_id="a").exists()


@pytest.mark.parametrize("chunk", [1, 3, 7, 64, 1 << 20])
def test_json_array_reader_splits_elements_across_read_boundaries(tmp_path, monkeypatch, chunk):
    monkeypatch.setattr(reader, "READ_CHUNK", chunk)
    elements = [{"a": 'x]},{\\"y'}, [1, [2, {"b": "}"}]], "str,ing", 12.5, {"c": "\\"}]
    text = "\ufeff[\n" + ",\n".join(orjson.dumps(e).decode() for e in elements) + "\n]\n"
    path = tmp_path / "a.json"
    path.write_text(text, encoding="utf-8")
    with ImportFile(path, max_file_bytes=10**6, max_line_bytes=10**6) as f:
        got = [(n, line, orjson.loads(data)) for n, line, data in f.json_array()]
    assert got == [(i + 1, i + 2, e) for i, e in enumerate(elements)]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[{"a": 1},,{"b": 2}]', "empty element"),
        ('[{"a": 1}] trailing', "after the end"),
        ('{"a": 1}', "expected a JSON array"),
        ('[{"a": 1}', "not closed"),
        ('[{"a": "unterminated]', "not closed"),
    ],
)
def test_json_array_reader_structure_errors(tmp_path, text, message):
    path = tmp_path / "a.json"
    path.write_text(text)
    with ImportFile(path, max_file_bytes=10**6, max_line_bytes=10**6) as f, pytest.raises(FileError, match=message):
        list(f.json_array())


# --- OpenAI ---------------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_openai_fine_tuning_and_chat_completion_records(write):
    finetune = {
        "messages": [
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": "Weather in Paris?"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "weather", "arguments": '{"city":"Paris"}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": "18C, cloudy"},
            {"role": "assistant", "content": "18C and cloudy.", "weight": 1},
        ]
    }
    completion = {
        "id": "chatcmpl-42",
        "model": "gpt-4o-2024-08-06",
        "created": 1767225600,
        "user": "u-77",
        "metadata": {"environment": "test", "user_role": "agent", "ticket": "T-1"},
        "messages": [
            {"role": "developer", "content": "Cite sources."},
            {
                "role": "user",
                "content": [{"type": "text", "text": "Summarise"}, {"type": "image_url", "image_url": {}}],
            },
        ],
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "Summary."}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 50, "completion_tokens": 5, "total_tokens": 55},
    }
    batch = import_file(path=write("chat.jsonl", [finetune, completion]), source="s")
    assert batch.status == ImportStatus.DONE, batch.error
    assert batch.format == "openai"

    ft = Conversation.objects.get(title="Weather in Paris?")
    assert ft.external_id.startswith("sha256:")
    turns = list(ft.turns.all())
    assert [t.role for t in turns] == ["user", "assistant", "tool", "assistant"]
    assert turns[1].system_prompt == "You are terse." and turns[3].system_prompt == "You are terse."
    assert turns[1].tool_calls == [
        {"id": "call_1", "name": "weather", "arguments": '{"city":"Paris"}', "result": "18C, cloudy"}
    ]
    assert turns[2].metadata == {"tool_call_id": "call_1"}
    assert turns[3].metadata == {"weight": 1}

    cc = Conversation.objects.get(external_id="chatcmpl-42")
    assert (cc.model_version, cc.end_user_id) == ("gpt-4o-2024-08-06", "u-77")
    assert (cc.user_role, cc.environment) == ("agent", "test")
    assert cc.started_at.isoformat() == "2026-01-01T00:00:00+00:00"
    assert cc.metadata["ticket"] == "T-1"
    user, answer = cc.turns.all()
    assert user.content == "Summarise" and user.metadata == {"content_parts": ["image_url"]}
    assert (answer.content, answer.prompt_tokens, answer.completion_tokens) == ("Summary.", 50, 5)
    assert answer.model_version == "gpt-4o-2024-08-06" and answer.system_prompt == "Cite sources."
    assert answer.metadata == {"finish_reason": "stop"}


@pytest.mark.django_db
def test_openai_rejection_names_the_message(write):
    bad = {"id": "x", "messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": 42}]}
    bad_role = {"id": "y", "messages": [{"role": "wizard", "content": "hi"}]}
    batch = import_file(path=write("chat.jsonl", [bad, bad_role]), source="s", format="openai")
    assert [(r.line, r.field) for r in batch.rejections.all()] == [(1, "messages[1].content"), (2, "messages[0].role")]


# --- CSV ------------------------------------------------------------------------------------------------------

CSV_HEADER = (
    "conversation_id,position,role,content,created_at,model_version,environment,user_id,user_role,"
    "feedback_type,rating,feedback_text,feedback_categories,system_prompt,channel\n"
)


@pytest.mark.django_db
def test_csv_rows_group_into_conversations_with_feedback(write):
    data = CSV_HEADER + (
        'c1,0,user,"Where is my order, please?",2026-03-01T10:00:00Z,,prod,u1,customer,,,,,,web\n'
        'c1,1,assistant,"It ships today.\nTracking follows.",2026-03-01T10:00:03Z,m-1,,,,thumbs_down,,,,Be kind.,\n'
        "c1,1,assistant,,,,,,,category,,,too vague;wrong tone,,\n"
        "c2,1,assistant,Hello!,,m-2,test,u2,agent,rating,2,meh,,,\n"
        "c2,0,user,Hi,,,,,,,,,,,\n"
    )
    path = write("turns.csv", data.encode())
    batch = import_file(path=path, source="s")
    assert batch.status == ImportStatus.DONE, batch.error
    assert (batch.format, batch.records_read, batch.conversations_created, batch.turns_written) == ("csv", 2, 2, 4)

    c1 = Conversation.objects.get(external_id="c1")
    assert (c1.title, c1.environment, c1.end_user_id, c1.user_role, c1.model_version) == (
        "Where is my order, please?", "prod", "u1", "customer", "m-1",
    )  # fmt: skip
    answer = c1.turns.get(position=1)
    assert answer.content == "It ships today.\nTracking follows." and answer.system_prompt == "Be kind."
    assert sorted(answer.feedback_events.values_list("kind", flat=True)) == ["category", "thumbs_down"]
    assert answer.feedback_events.get(kind="category").categories == ["too vague", "wrong tone"]
    assert c1.turns.get(position=0).metadata == {"channel": "web"}
    c2 = Conversation.objects.get(external_id="c2")
    assert list(c2.turns.values_list("role", flat=True)) == ["user", "assistant"]  # ordered by position
    event = FeedbackEvent.objects.get(kind="rating")
    assert (event.rating, event.text, event.is_negative) == (2, "meh", True)

    again = import_file(path=write("turns-again.csv", data.encode()), source="s")
    assert again.conversations_unchanged == 2 and FeedbackEvent.objects.count() == 3


@pytest.mark.django_db
def test_csv_bad_rows_are_rejected_with_line_and_column(write):
    data = CSV_HEADER + (
        "ok,0,user,fine,,,,,,,,,,,\n"
        "bad1,0,user,hi,not-a-date,,,,,,,,,,\n"
        "bad2,0,user,hi,,,,,,,seven,,,,\n"
        "bad3,0,narrator,hi,,,,,,,,,,,\n"
        "bad4,0,user,too,few\n"
        "ok2,0,user,fine too,,,,,,,,,,,\n"
        "ok,1,assistant,split group,,,,,,,,,,,\n"
    )
    batch = import_file(path=write("bad.csv", data.encode()), source="s")
    assert set(Conversation.objects.values_list("external_id", flat=True)) == {"ok", "ok2"}
    assert Conversation.objects.get(external_id="ok").turn_count == 1
    got = [(r.line, r.field) for r in batch.rejections.all()]
    assert got == [(3, "created_at"), (4, "rating"), (5, "role"), (6, ""), (8, "conversation_id")]
    reasons = {r.line: r.reason for r in batch.rejections.all()}
    assert "15 columns" in reasons[6]
    assert "adjacent" in reasons[8]


@pytest.mark.django_db
def test_csv_without_required_columns_fails(write):
    batch = import_file(path=write("x.csv", b"id,text\n1,hello\n"), source="s", format="csv")
    assert batch.status == ImportStatus.FAILED
    assert "x.csv: line 1" in batch.error and "conversation_id" in batch.error


@pytest.mark.django_db
def test_csv_with_bom_and_invalid_utf8_row(write):
    data = b"\xef\xbb\xbf" + CSV_HEADER.encode() + b"a,0,user,ok,,,,,,,,,,,\nb,0,user,caf\xe9,,,,,,,,,,,\n"
    batch = import_file(path=write("bom.csv", data), source="s")
    assert batch.format == "csv"
    assert list(Conversation.objects.values_list("external_id", flat=True)) == ["a"]
    rejection = batch.rejections.get()
    assert rejection.line == 3 and "invalid UTF-8 at byte 13" in rejection.reason


# --- Detection ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("a.jsonl", orjson.dumps(conversation()) + b"\n", "native"),
        ("a.jsonl.gz", orjson.dumps(conversation()) + b"\n", "native"),
        ("a.log", b'{"messages": [{"role": "user", "content": "hi"}]}\n', "openai"),
        ("a.jsonl", b'{"id": 1, "conversations": []}\n', "sharegpt"),
        ("a.json", b'  [ {"id": 1, "conversations": []} ]', "sharegpt"),
        ("a.csv", CSV_HEADER.encode(), "csv"),
        ("a.txt", b"\xef\xbb\xbf" + CSV_HEADER.encode(), "csv"),
        ("a.jsonl", b"{broken\n" + orjson.dumps(conversation()) + b"\n", "native"),
    ],
)
def test_detect_format(write, name, content, expected):
    assert detect_format(write(name, content)) == expected


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "empty"),
        (b"hello world\n", "cannot tell the format"),
        (b'{"foo": 1}\n', "keys: foo"),
        (b'[{"turns": []}]', "Only ShareGPT"),
    ],
)
def test_detect_format_errors(write, content, message):
    with pytest.raises(FileError, match=message):
        detect_format(write("x.data", content))


@pytest.mark.django_db
def test_undetectable_file_fails_the_batch(write):
    batch = import_file(path=write("notes.txt", b"just some notes\n"), source="s")
    assert batch.status == ImportStatus.FAILED and "notes.txt" in batch.error and "format" in batch.error


@pytest.mark.django_db
def test_csv_quoting_error_rejects_the_whole_conversation(write):
    data = CSV_HEADER + (
        "a,0,user,first,,,,,,,,,,,\n"
        'a,1,assistant,"broken"quote,,,,,,,,,,,\n'
        "a,2,user,third,,,,,,,,,,,\n"
        "b,0,user,fine,,,,,,,,,,,\n"
    )
    batch = import_file(path=write("q.csv", data.encode()), source="s")
    assert list(Conversation.objects.values_list("external_id", flat=True)) == ["b"]
    rejection = batch.rejections.get()
    assert rejection.line == 3 and "malformed CSV row" in rejection.reason


@pytest.mark.django_db
@pytest.mark.parametrize("fmt", ["native", "openai"])
def test_a_json_array_given_as_a_line_format_fails_clearly(write, fmt):
    batch = import_file(path=write("arr.json", b'[{"id": 1, "turns": []}]'), source="s", format=fmt)
    assert batch.status == ImportStatus.FAILED
    assert "arr.json: line 1: a JSON array" in batch.error and "JSONL" in batch.error
