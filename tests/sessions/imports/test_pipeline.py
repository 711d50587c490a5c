"""The shared pipeline through the native format: idempotency, updates in place, rejections, limits."""

from __future__ import annotations

import gzip

import pytest
from django.db import connection

from sessions.imports import chunking, pipeline
from sessions.imports import normalise as norm
from sessions.imports.formats import native
from sessions.models import SEARCH_CONFIG, Conversation, FeedbackEvent, ImportBatch, ImportStatus, Turn
from sessions.services import import_batch_create, import_batch_run, import_file
from tests.sessions.imports.conftest import conversation, jsonl

pytestmark = pytest.mark.django_db


def counts() -> tuple[int, int, int]:
    return Conversation.objects.count(), Turn.objects.count(), FeedbackEvent.objects.count()


def with_feedback(record: dict, *events: dict, turn: int = 1) -> dict:
    record["turns"][turn]["feedback"] = list(events)
    return record


def test_native_import_stores_every_field(write):
    record = with_feedback(
        conversation("c-1", turns=4),
        {"id": "fb-1", "type": "thumbs_down", "created_at": "2026-03-01T10:01:00Z"},
        {"type": "category", "categories": ["too vague", 'has "quotes", commas']},
    )
    batch = import_file(path=write("a.jsonl", [record]), source="support-bot")

    assert batch.status == ImportStatus.DONE, batch.error
    assert (batch.format, batch.records_read, batch.conversations_created, batch.turns_written) == ("native", 1, 1, 4)
    assert batch.feedback_written == 2
    assert batch.bytes_read == batch.total_bytes > 0
    assert len(batch.sha256) == 64
    conv = Conversation.objects.get()
    assert (conv.source, conv.external_id, conv.end_user_id, conv.user_role) == (
        "support-bot",
        "c-1",
        "u-9f2",
        "customer",
    )
    assert (conv.environment, conv.model_version, conv.app_version) == ("prod", "support-llm-2026-02", "4.2.0")
    assert conv.started_at.isoformat() == "2026-03-01T10:00:00+00:00"
    assert conv.metadata == {"locale": "en-GB"}
    assert conv.title == "How do I reset my password? (c-1 q0)"
    assert conv.turn_count == 4
    assert sorted(conv.feedback_kinds) == ["category", "thumbs_down"]
    assert conv.has_negative_feedback is True
    assert conv.last_import_id == batch.pk
    turn = conv.turns.get(position=1)
    assert turn.role == "assistant" and turn.latency_ms == 850 and turn.prompt_tokens == 120
    assert turn.completion_tokens == 40 and turn.confidence == 0.8 and turn.model_version == "support-llm-2026-02"
    assert turn.system_prompt == "You are the support assistant."
    assert turn.retrieved_documents == [{"id": "kb-12", "score": 0.91, "title": "Passwords", "text": "..."}]
    assert turn.tool_calls[0]["name"] == "lookup_user" and turn.tool_calls[0]["arguments"] == {"id": 7}
    events = {e.kind: e for e in turn.feedback_events.all()}
    assert events["thumbs_down"].event_key == "fb-1" and events["thumbs_down"].is_negative
    assert events["category"].categories == ["too vague", 'has "quotes", commas']
    assert events["category"].conversation_id == conv.pk


def test_search_vector_finds_words_from_title_and_turns(write):
    record = conversation("c-1", turns=2)
    record["turns"][1]["content"] = "Refunds are processed within five business days."
    import_file(path=write("a.jsonl", [record]), source="s")

    def search(q: str) -> int:
        with connection.cursor() as cur:
            cur.execute(
                "SELECT count(*) FROM conversations_conversation WHERE search_vector @@ websearch_to_tsquery(%s, %s)",
                [SEARCH_CONFIG, q],
            )
            return cur.fetchone()[0]

    assert search("password reset") == 1
    assert search("refund processing") == 1  # stemmed
    assert search("invoice") == 0


def test_reimport_changes_nothing(write):
    records = [with_feedback(conversation(f"c-{i}", turns=4), {"type": "copy"}) for i in range(5)]
    path = write("a.jsonl", records)
    first = import_file(path=path, source="s")
    before = counts()
    turn_ids = set(Turn.objects.values_list("id", flat=True))
    updated_at = dict(Conversation.objects.values_list("id", "updated_at"))

    again = import_file(path=path, source="s")

    assert (first.conversations_created, again.conversations_created) == (5, 0)
    assert (again.conversations_unchanged, again.conversations_updated, again.turns_written) == (5, 0, 0)
    assert counts() == before == (5, 20, 5)
    assert set(Turn.objects.values_list("id", flat=True)) == turn_ids
    assert dict(Conversation.objects.values_list("id", "updated_at")) == updated_at
    assert again.status == ImportStatus.DONE


def test_overlapping_file_adds_only_the_new_conversations(write):
    import_file(path=write("a.jsonl", [conversation(f"c-{i}") for i in range(3)]), source="s")
    batch = import_file(path=write("b.jsonl", [conversation(f"c-{i}") for i in range(1, 5)]), source="s")
    assert (batch.conversations_created, batch.conversations_unchanged, batch.conversations_updated) == (2, 2, 0)
    assert counts()[:2] == (5, 10)


def test_same_id_in_another_source_is_another_conversation(write):
    path = write("a.jsonl", [conversation("c-1")])
    import_file(path=path, source="bot-a")
    import_file(path=path, source="bot-b")
    assert Conversation.objects.filter(external_id="c-1").count() == 2


def test_record_source_overrides_the_import_source(write):
    import_file(path=write("a.jsonl", [conversation("c-1", source="web-widget")]), source="s")
    assert Conversation.objects.get().source == "web-widget"


def test_edited_record_updates_in_place(write):
    original = with_feedback(conversation("c-1", turns=4), {"id": "fb-1", "type": "thumbs_up"}, {"type": "copy"})
    import_file(path=write("a.jsonl", [original]), source="s")
    conv = Conversation.objects.get()
    turn_ids = dict(conv.turns.values_list("position", "id"))

    edited = with_feedback(
        conversation("c-1", turns=4), {"id": "fb-1", "type": "thumbs_down"}, {"type": "rating", "rating": 1}
    )
    edited["turns"][3]["content"] = "A corrected answer."
    batch = import_file(path=write("b.jsonl", [edited]), source="s")

    assert (batch.conversations_created, batch.conversations_updated, batch.conversations_unchanged) == (0, 1, 0)
    conv.refresh_from_db()
    assert dict(conv.turns.values_list("position", "id")) == turn_ids  # same rows, updated in place
    assert conv.turns.get(position=3).content == "A corrected answer."
    kinds = dict(FeedbackEvent.objects.values_list("event_key", "kind"))
    assert kinds["fb-1"] == "thumbs_down"  # same event id: updated
    assert sorted(kinds.values()) == ["rating", "thumbs_down"]  # the copy event is gone with the edit
    assert sorted(conv.feedback_kinds) == ["rating", "thumbs_down"] and conv.has_negative_feedback
    assert conv.last_import_id == batch.pk


def test_shortened_conversation_loses_its_extra_turns(write):
    long = with_feedback(conversation("c-1", turns=6), {"type": "regenerate"}, turn=5)
    import_file(path=write("a.jsonl", [long]), source="s")
    batch = import_file(path=write("b.jsonl", [conversation("c-1", turns=3)]), source="s")
    assert batch.conversations_updated == 1
    conv = Conversation.objects.get()
    assert list(conv.turns.values_list("position", flat=True)) == [0, 1, 2]
    assert conv.turn_count == 3
    assert not FeedbackEvent.objects.exists()
    assert conv.feedback_kinds == [] and conv.has_negative_feedback is False


def test_identical_feedback_events_on_one_turn_are_both_kept_and_stay_idempotent(write):
    record = with_feedback(conversation("c-1"), {"type": "copy"}, {"type": "copy"})
    path = write("a.jsonl", [record])
    import_file(path=path, source="s")
    import_file(path=path, source="s")
    assert FeedbackEvent.objects.count() == 2


def test_duplicate_id_within_one_file_keeps_the_later_record(write):
    first, second = conversation("c-1", turns=2), conversation("c-1", turns=4)
    batch = import_file(path=write("a.jsonl", [first, second]), source="s")
    assert (batch.conversations_created, batch.conversations_updated) == (1, 1)
    assert Conversation.objects.get().turn_count == 4


def test_malformed_records_are_rejected_by_line_and_field_and_the_rest_goes_in(write):
    good = [conversation(f"c-{i}") for i in range(4)]
    bad_role = conversation("bad-1")
    bad_role["turns"][1]["role"] = "robot"
    bad_rating = with_feedback(conversation("bad-2"), {"type": "rating", "rating": 9})
    lines = [
        good[0],
        b'{"id": "broken", "turns": [',  # line 2: not JSON
        bad_role,  # line 3
        good[1],
        {"turns": [{"role": "user", "content": "hi"}]},  # line 5: no id
        bad_rating,  # line 6
        b"[1, 2]",  # line 7: not an object
        good[2],
        conversation("bad-3", environment="staging"),  # line 9
        conversation("bad-4", started_at="yesterday"),  # line 10
        good[3],
    ]
    batch = import_file(path=write("mixed.jsonl", lines), source="s")

    assert batch.status == ImportStatus.DONE_WITH_REJECTIONS
    assert (batch.records_read, batch.conversations_created, batch.records_rejected) == (11, 4, 7)
    assert set(Conversation.objects.values_list("external_id", flat=True)) == {"c-0", "c-1", "c-2", "c-3"}
    rejections = {r.line: r for r in batch.rejections.all()}
    assert sorted(rejections) == [2, 3, 5, 6, 7, 9, 10]
    assert rejections[2].reason.startswith("invalid JSON")
    assert rejections[2].excerpt.startswith('{"id": "broken"')
    assert rejections[3].field == "turns[1].role" and "robot" in rejections[3].reason
    assert rejections[5].field == "id" and "missing" in rejections[5].reason
    assert rejections[6].field == "turns[1].feedback[0].rating"
    assert "object" in rejections[7].reason
    assert rejections[9].field == "environment"
    assert rejections[10].field == "started_at"


def test_nothing_stored_is_lost_when_a_later_file_has_bad_records(write):
    import_file(path=write("a.jsonl", [conversation("c-1")]), source="s")
    broken = conversation("c-1")
    broken["turns"][0]["content"] = {"not": "text"}
    batch = import_file(path=write("b.jsonl", [broken]), source="s")
    assert batch.records_rejected == 1
    assert Conversation.objects.get().turns.count() == 2


def test_rejections_stored_are_capped(write, settings):
    settings.IMPORT_MAX_REJECTIONS_STORED = 3
    batch = import_file(path=write("a.jsonl", [b"{nope"] * 10 + [conversation("c-1")]), source="s")
    assert batch.records_rejected == 10
    assert batch.rejections.count() == 3
    assert batch.conversations_created == 1


def test_hostile_text_is_stored_verbatim(write):
    hostile = '<script>alert(1)</script><img src=x onerror="alert(2)"><div hx-get="/admin" hx-trigger="load">'
    record = conversation("c-1")
    record["turns"][1]["content"] = hostile
    record["turns"][1]["context"]["system_prompt"] = hostile
    record["metadata"] = {"note": hostile}
    record["turns"][1]["feedback"] = [{"type": "comment", "text": hostile}]
    import_file(path=write("a.jsonl", [record]), source="s")
    turn = Turn.objects.get(position=1)
    assert turn.content == hostile and turn.system_prompt == hostile
    assert Conversation.objects.get().metadata == {"note": hostile}
    assert FeedbackEvent.objects.get().text == hostile


def test_unicode_and_control_characters_survive(write):
    text = "emoji 👩‍👩‍👧 tab\there\nnewline \\backslash\\ \r\n and \u2028 and NUL\u0000end"
    record = conversation("c-1")
    record["turns"][1]["content"] = text
    import_file(path=write("a.jsonl", [record]), source="s")
    # PostgreSQL text cannot hold NUL: it is replaced by U+FFFD, everything else is kept as is.
    assert Turn.objects.get(position=1).content == text.replace("\u0000", "\ufffd")


def test_gzip_file(write):
    batch = import_file(path=write("a.jsonl.gz", [conversation("c-1"), conversation("c-2")]), source="s")
    assert batch.status == ImportStatus.DONE and batch.conversations_created == 2
    assert batch.bytes_read == batch.total_bytes


def test_invalid_utf8_is_rejected_naming_line_and_byte(write):
    bad_line = b'{"id": "c-2", "turns": [{"role": "user", "content": "caf\xe9"}]}'
    data = jsonl([conversation("c-1")]) + bad_line + b"\n" + jsonl([conversation("c-3")])
    batch = import_file(path=write("latin1.jsonl", data), source="s")
    assert batch.conversations_created == 2
    rejection = batch.rejections.get()
    assert rejection.line == 2
    byte = bad_line.index(b"\xe9") + 1
    assert f"invalid UTF-8 at byte {byte} of the line" in rejection.reason
    assert "(bytes e9)" in rejection.reason


def test_utf8_bom_at_start_is_accepted(write):
    batch = import_file(path=write("bom.jsonl", b"\xef\xbb\xbf" + jsonl([conversation("c-1")])), source="s")
    assert batch.status == ImportStatus.DONE and batch.conversations_created == 1


def test_utf16_file_fails_with_a_clear_error(write):
    data = "\ufeff".encode("utf-16-le") + jsonl([conversation("c-1")]).decode().encode("utf-16-le")
    batch = import_file(path=write("utf16.jsonl", b"\xff\xfe" + data[2:]), source="s", format="native")
    assert batch.status == ImportStatus.FAILED
    assert "utf16.jsonl: line 1" in batch.error and "UTF-16" in batch.error and "UTF-8" in batch.error
    assert not Conversation.objects.exists()


def test_over_long_line_is_rejected_and_the_rest_goes_in(write, settings):
    settings.IMPORT_MAX_LINE_BYTES = 2000
    huge = conversation("huge")
    huge["turns"][0]["content"] = "x" * 5000
    batch = import_file(path=write("a.jsonl", [conversation("c-1"), huge, conversation("c-2")]), source="s")
    assert batch.conversations_created == 2
    rejection = batch.rejections.get()
    assert rejection.line == 2 and "IMPORT_MAX_LINE_BYTES" in rejection.reason


def test_oversize_file_fails_before_reading(write, settings):
    settings.IMPORT_MAX_FILE_BYTES = 100
    batch = import_file(path=write("big.jsonl", [conversation("c-1")]), source="s")
    assert batch.status == ImportStatus.FAILED
    assert "big.jsonl" in batch.error and "IMPORT_MAX_FILE_BYTES" in batch.error
    assert not Conversation.objects.exists()


def test_gzip_that_expands_past_the_limit_fails_but_keeps_what_went_in(write, settings, monkeypatch):
    monkeypatch.setattr(chunking, "CHUNK_CONVERSATIONS", 2)
    records = [conversation(f"c-{i}") for i in range(20)]
    path = write("bomb.jsonl.gz", records)
    settings.IMPORT_MAX_FILE_BYTES = len(jsonl(records)) // 2
    assert path.stat().st_size < settings.IMPORT_MAX_FILE_BYTES
    batch = import_file(path=path, source="s")
    assert batch.status == ImportStatus.FAILED
    assert "decompressed" in batch.error and "IMPORT_MAX_FILE_BYTES" in batch.error
    assert 0 < Conversation.objects.count() < 20


def test_truncated_gzip_fails_clearly(write):
    path = write("cut.jsonl.gz", [conversation(f"c-{i}", turns=8) for i in range(50)])
    path.write_bytes(path.read_bytes()[:-200])
    batch = import_file(path=path, source="s")
    assert batch.status == ImportStatus.FAILED
    assert "cut.jsonl.gz" in batch.error and "damaged or truncated" in batch.error


def test_missing_file_fails_clearly(tmp_path):
    batch = import_file(path=tmp_path / "nope.jsonl", source="s")
    assert batch.status == ImportStatus.FAILED and "nope.jsonl" in batch.error


def test_batch_progress_is_saved_during_the_run(write, monkeypatch):
    monkeypatch.setattr(chunking, "CHUNK_CONVERSATIONS", 3)
    monkeypatch.setattr(pipeline, "PROGRESS_SECONDS", 0)
    path = write("a.jsonl", [conversation(f"c-{i}") for i in range(10)])
    batch = import_batch_create(file_name="a.jsonl", source="s", total_bytes=path.stat().st_size)
    seen: list[tuple[str, int, int]] = []

    def progress(b: ImportBatch) -> None:
        stored = ImportBatch.objects.get(pk=b.pk)
        seen.append((stored.status, stored.records_read, stored.bytes_read))

    import_batch_run(batch=batch, path=path, progress=progress)
    running = [s for s in seen if s[0] == ImportStatus.RUNNING]
    assert [r for _, r, _ in running][-4:] == [3, 6, 9, 10]
    assert seen[-1][0] == ImportStatus.DONE and seen[-1][1] == 10
    batch.refresh_from_db()
    assert batch.started_at <= batch.finished_at and batch.duration_seconds is not None


def test_a_chunk_the_database_refuses_is_retried_record_by_record(write, monkeypatch):
    # Let a value through validation that PostgreSQL refuses (longer than the column).
    monkeypatch.setitem(norm.TEXT_LIMITS, "end_user_id", 10_000)
    bad = conversation("bad", user={"id": "u" * 300, "role": "customer"})
    batch = import_file(path=write("a.jsonl", [conversation("c-1"), bad, conversation("c-2")]), source="s")
    assert batch.status == ImportStatus.DONE_WITH_REJECTIONS
    assert batch.conversations_created == 2
    assert set(Conversation.objects.values_list("external_id", flat=True)) == {"c-1", "c-2"}
    rejection = batch.rejections.get()
    assert rejection.line == 2 and "refused by the database" in rejection.reason


class Stop(Exception):
    """Stands for a worker stopped between two chunks (a time limit)."""


def test_an_interrupted_import_resumes_after_its_last_committed_chunk(write, monkeypatch):
    monkeypatch.setattr(chunking, "CHUNK_CONVERSATIONS", 3)
    monkeypatch.setattr(pipeline, "PROGRESS_SECONDS", 0.0)
    records = [conversation(f"c-{i}") for i in range(10)]
    records[4] = b"{bad"
    path = write("a.jsonl", records)
    batch = import_batch_create(file_name="a.jsonl", source="s")

    def stop_after_a_chunk(b):
        if b.records_read:
            raise Stop

    with pytest.raises(Stop):
        import_batch_run(batch=batch, path=path, progress=stop_after_a_chunk, interrupt=(Stop,))
    batch.refresh_from_db()
    assert batch.status == ImportStatus.QUEUED and 0 < batch.records_read < 10
    done_before = batch.records_read
    assert Conversation.objects.count() == batch.conversations_created

    import_batch_run(batch=batch, path=path)  # the redelivered job
    batch.refresh_from_db()
    assert batch.status == ImportStatus.DONE_WITH_REJECTIONS and done_before < 10
    assert (batch.records_read, batch.conversations_created, batch.conversations_unchanged) == (10, 9, 0)
    assert batch.records_rejected == 1 and batch.rejections.count() == 1
    assert Conversation.objects.count() == 9 and Turn.objects.count() == 18

    import_batch_run(batch=batch, path=path)  # delivered once more after it finished: nothing is counted twice
    batch.refresh_from_db()
    assert (batch.records_read, batch.conversations_created, batch.records_rejected) == (10, 9, 1)


@pytest.mark.django_db(transaction=True)
def test_reimport_skips_validating_records_stored_unchanged(write, monkeypatch):
    path = write("a.jsonl", [conversation(f"c-{i}") for i in range(6)])
    import_file(path=path, source="s")  # committed: the reader's own connection sees it
    validated: list[int] = []
    real_finish = native.finish

    def counting_finish(parsed, **kwargs):
        validated.append(parsed.line)
        return real_finish(parsed, **kwargs)

    monkeypatch.setattr(native, "finish", counting_finish)
    edited = [conversation(f"c-{i}") for i in range(6)]
    edited[4]["turns"][0]["content"] = "edited"
    again = import_file(path=write("b.jsonl", edited), source="s")
    assert (again.conversations_unchanged, again.conversations_updated, again.conversations_created) == (5, 1, 0)
    assert validated == [5]  # only the edited record was validated
    assert Turn.objects.get(conversation__external_id="c-4", position=0).content == "edited"


@pytest.mark.django_db(transaction=True)
def test_a_later_copy_in_the_same_file_wins_even_when_it_matches_what_is_stored(write):
    v1, v2 = conversation("c-1", turns=2), conversation("c-1", turns=4)
    import_file(path=write("a.jsonl", [v1]), source="s")
    batch = import_file(path=write("b.jsonl", [v2, v1]), source="s")
    assert batch.conversations_updated == 2
    assert Conversation.objects.get().turn_count == 2


def test_chunks_are_bounded_by_bytes_too(write, monkeypatch):
    monkeypatch.setattr(chunking, "CHUNK_BYTES", 1)  # every record is its own chunk
    monkeypatch.setattr(pipeline, "PROGRESS_SECONDS", 0)
    seen: list[int] = []
    path = write("a.jsonl", [conversation(f"c-{i}") for i in range(4)])
    batch = import_file(path=path, source="s", progress=lambda b: seen.append(b.records_read))
    assert batch.conversations_created == 4
    assert [n for n in seen if n][:4] == [1, 2, 3, 4]


BLANK_LINES = 20_000_000


def test_millions_of_blank_lines_are_skipped_in_bulk(tmp_path, client, moderator):
    """A small gzip of blank lines (20 million here, in about 20 KB) finishes with no record and says so."""
    path = tmp_path / "blank.jsonl.gz"
    path.write_bytes(gzip.compress(b"\n" * (BLANK_LINES - 1) + b"\r\n  \n", compresslevel=9))
    assert path.stat().st_size < 100_000
    batch = import_file(path=path, source="s", format="native")
    assert batch.status == ImportStatus.DONE and batch.error == ""
    assert (batch.records_read, batch.conversations_created, batch.records_rejected) == (0, 0, 0)
    client.force_login(moderator)
    assert 'id="import-no-records"' in client.get(batch.get_absolute_url()).content.decode()
    # Detecting the format reads past them the same way, and says what it found.
    detected = import_file(path=path, source="s")
    assert detected.status == ImportStatus.FAILED and "no records" in detected.error


def test_blank_line_runs_keep_line_numbers(write):
    path = write("a.jsonl.gz", b"\n\n  \n\r\n" + b"{bad\n" + b"\n" * 5000 + b"   {bad too\n\n")
    batch = import_file(path=path, source="s", format="native")
    assert list(batch.rejections.order_by("line").values_list("line", flat=True)) == [5, 5006]
