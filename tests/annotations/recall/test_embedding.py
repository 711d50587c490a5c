"""Embedding: the offline model, the batched idempotent embed service, and the reembed command."""

from __future__ import annotations

import io

import numpy as np
import pytest
from django.core.management import CommandError, call_command

from annotations.recall import embedding, services
from annotations.recall.models import Embedding, EmbeddingModel, FeedbackItem
from annotations.recall.selectors import active_model_name
from feedbackhub import embeddings
from sessions.models import FeedbackEvent
from tests.factories import make_conversation

pytestmark = pytest.mark.django_db


def _items(n: int, *, start: int = 0) -> list[FeedbackItem]:
    """``n`` end-user feedback items, each on its own conversation, with distinct texts."""
    ids = []
    for i in range(start, start + n):
        conv = make_conversation(
            turns=[("user", f"Question number {i} about card limits"), ("assistant", f"Answer {i}: call the bank.")],
            feedback={1: [{"kind": "thumbs_down", "text": f"complaint {i}"}]},
        )
        ids.append(FeedbackEvent.objects.get(conversation=conv).pk)
    services.feedback_items_sync_for_feedback_events(event_ids=ids)
    return list(FeedbackItem.objects.filter(feedback_event_id__in=ids).order_by("id"))


def _rows() -> list[tuple]:
    return sorted(Embedding.objects.values_list("item_id", "model", "text_hash", "id"))


def test_encode_is_offline_normalised_and_384_wide(model):
    vectors = embeddings.encode(["The card was blocked", "My card got blocked", "Best pasta recipe"])
    assert vectors.shape == (3, 384) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2] + 0.3
    assert embeddings.get_model() is model  # loaded once per process
    assert embeddings.encode([]).shape == (0, 384)


def test_token_batches_go_longest_first_within_both_limits():
    lengths = [5, 256, 30, 200, 30, 7, 256, 12]
    batches = embeddings.token_batches(lengths, batch_size=3, token_budget=512)
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))  # every text once
    assert [lengths[i] for b in batches for i in b] == sorted(lengths, reverse=True)
    for batch in batches:
        assert len(batch) <= 3 and lengths[batch[0]] == max(lengths[i] for i in batch)
        assert len(batch) == 1 or lengths[batch[0]] * len(batch) <= 512
    assert [len(b) for b in batches] == [2, 2, 3, 1]  # 256+256 | 200+30 | 30+12+7 | 5
    assert embeddings.token_batches([900], batch_size=64, token_budget=512) == [[0]]  # too long for the budget: alone


@pytest.mark.parametrize("name", [embeddings.DEFAULT_MODEL, f"{embeddings.DEFAULT_MODEL}@{embeddings.ONNX}"])
def test_token_budget_batches_make_the_vectors_of_fixed_batches_in_the_callers_order(model, name):
    texts = [
        "short",
        " ".join(["A long explanation of why the reply missed the refund policy."] * 40),  # truncated at 256 tokens
        "A medium one: the assistant quoted 60 days; the policy says 30.",
        "🙂",
        " ".join(["Another long one about blocked cards and PIN attempts."] * 12),
    ]
    fixed = embeddings.get_model(name).encode(texts, batch_size=64, normalize_embeddings=True)
    lengths = embeddings.token_lengths(embeddings.get_model(name), texts)
    assert lengths[1] == 256 and lengths[0] < lengths[2] < lengths[4] < 256
    budgeted = embeddings.encode(texts, name=name, token_budget=300)  # 256 alone, then the rest
    assert budgeted.shape == (5, 384) and budgeted.dtype == np.float32
    assert np.abs(budgeted - fixed).max() < 1e-4


def test_embed_pending_in_batches_then_again_changes_nothing(embed_all):
    items = _items(7)
    first = embed_all(chunk_size=3)
    assert (first.embedded, first.chunks) == (7, 3)
    rows = _rows()
    assert len(rows) == 7 and {r[0] for r in rows} == {i.pk for i in items}
    assert {r[1] for r in rows} == {active_model_name()}
    assert embedding.embeddings_pending_count() == 0

    again = embed_all(chunk_size=3)
    assert (again.embedded, again.chunks) == (0, 0)
    assert _rows() == rows
    assert not FeedbackItem.objects.filter(embedding_pending=True).exists()


def test_a_stale_pending_flag_is_cleared_without_embedding_again(embed_all):
    items = _items(2)
    embed_all()
    FeedbackItem.objects.filter(pk=items[0].pk).update(embedding_pending=True)
    result = embed_all()
    assert (result.embedded, result.chunks) == (0, 1) and len(_rows()) == 2
    assert not FeedbackItem.objects.filter(embedding_pending=True).exists()


def test_a_text_change_gets_a_new_vector_and_the_stale_one_goes(embed_all):
    item = _items(1)[0]
    embed_all()
    old = Embedding.objects.get(item=item)
    FeedbackEvent.objects.filter(pk=item.feedback_event_id).update(text="a completely different complaint")
    services.feedback_items_sync_for_feedback_events(event_ids=[item.feedback_event_id])
    assert embedding.embeddings_pending_count() == 1
    assert embed_all().embedded == 1
    new = Embedding.objects.get(item=item)
    item.refresh_from_db()
    assert new.pk != old.pk and new.text_hash == item.text_hash != old.text_hash


def test_a_batch_that_fails_half_way_keeps_nothing_of_itself_and_the_rerun_is_exact(embed_all):
    _items(5)
    calls = {"n": 0}

    def encode_then_fail(texts):
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("worker lost")
        return embeddings.encode(texts)

    with pytest.raises(RuntimeError):
        embed_all(chunk_size=2, encode=encode_then_fail)
    assert len(_rows()) == 2  # the first chunk committed, the second rolled back
    assert embed_all(chunk_size=2).embedded == 3
    counts = list(Embedding.objects.values_list("item_id", flat=True))
    assert len(counts) == len(set(counts)) == 5


def test_inactive_items_are_not_embedded(embed_all):
    items = _items(2)
    FeedbackItem.objects.filter(pk=items[0].pk).update(is_active=False)
    assert embed_all().embedded == 1 and _rows()[0][0] == items[1].pk


def test_reembed_moves_everything_to_a_new_model_and_drops_old_vectors_only_when_told(embed_all):
    _items(4)
    embed_all()
    old_model = active_model_name()
    # Another name for a model: the packaged weights' folder (a local sentence-transformers model).
    new_model = embeddings.model_path(embeddings.DEFAULT_MODEL)
    assert new_model != old_model

    out, err = io.StringIO(), io.StringIO()
    call_command("reembed", "--model", new_model, "--batch", "3", stdout=out, stderr=err)
    assert "embedded 4 item(s)" in out.getvalue() and f"active model: {new_model}" in out.getvalue()
    assert active_model_name() == new_model
    assert EmbeddingModel.objects.get(is_active=True).name == new_model
    assert Embedding.objects.filter(model=new_model).count() == 4
    assert Embedding.objects.filter(model=old_model).count() == 4  # kept: switching back is instant
    assert not FeedbackItem.objects.filter(embedding_pending=True).exists()

    # Nothing left to do for the new model; switching back and dropping the other model's vectors.
    out = io.StringIO()
    call_command("reembed", "--model", old_model, "--drop-old", stdout=out, stderr=io.StringIO())
    assert "embedded 0 item(s)" in out.getvalue() and active_model_name() == old_model
    assert set(Embedding.objects.values_list("model", flat=True)) == {old_model}


def test_reembed_refuses_a_model_it_cannot_load():
    with pytest.raises(CommandError, match="cannot load model"):
        call_command("reembed", "--model", "/nonexistent/model", stdout=io.StringIO(), stderr=io.StringIO())
    with pytest.raises(CommandError, match="--drop-old"):
        call_command("reembed", "--no-activate", "--drop-old", stdout=io.StringIO(), stderr=io.StringIO())


def test_the_first_embed_pins_the_model_so_a_changed_backend_setting_does_not_empty_searches(embed_all, settings):
    assert not EmbeddingModel.objects.exists()
    _items(2)
    embed_all()
    pinned = EmbeddingModel.objects.get(is_active=True)
    assert pinned.name == embeddings.model_name() == "all-MiniLM-L6-v2"
    # Without the row, this setting alone would make searches look for int8 vectors there are none of.
    settings.EMBEDDING_BACKEND = "onnx-int8"
    assert active_model_name() == "all-MiniLM-L6-v2"
    assert {r[1] for r in _rows()} == {"all-MiniLM-L6-v2"}
    embed_all()  # and the embed task keeps to it
    assert EmbeddingModel.objects.filter(is_active=True).count() == 1
