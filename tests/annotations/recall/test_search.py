"""Vector search: ranking, filters, iterative scans under selective filters, and the query count of results."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
from django.db import connection

from annotations import services as review
from annotations.models import Correction, CorrectionStatus, Tag
from annotations.recall import selectors, services
from annotations.recall.models import Embedding, FeedbackItem, SourceKind
from annotations.recall.selectors import RecallFilters
from sessions.models import FeedbackEvent
from tests.factories import make_conversation

pytestmark = pytest.mark.django_db


def _unit(v: np.ndarray) -> np.ndarray:
    return (v / np.linalg.norm(v)).astype(np.float32)


def _synthetic(vectors: list[np.ndarray], *, environments: list[str], days: list[int] | None = None) -> list[int]:
    """Items with the given vectors stored directly for the active model (no model needed): one conversation, one
    feedback event per item. Returns the item ids in order."""
    conv = make_conversation()
    turn = conv.turns.get(position=1)
    model = selectors.active_model_name()
    base = dt.datetime(2026, 3, 1, 12, tzinfo=dt.UTC)
    events = FeedbackEvent.objects.bulk_create(
        [FeedbackEvent(conversation=conv, turn=turn, event_key=f"s{i}", kind="thumbs_down", is_negative=True)
         for i in range(len(vectors))]
    )
    items = FeedbackItem.objects.bulk_create(
        [
            FeedbackItem(
                source=SourceKind.FEEDBACK_EVENT, feedback_event=e, conversation=conv, turn=turn,
                environment=environments[i], occurred_at=base + dt.timedelta(days=(days or [0] * len(vectors))[i]),
                is_negative=True, text=f"synthetic {i}", text_hash=f"h{i}",
            )
            for i, e in enumerate(events)
        ]
    )  # fmt: skip
    Embedding.objects.bulk_create(
        [Embedding(item=item, model=model, text_hash=item.text_hash, vector=v) for item, v in zip(items, vectors,
                                                                                                  strict=True)]
    )
    return [item.pk for item in items]


def test_nearest_first_with_similarity_and_exclusions():
    rng = np.random.default_rng(1)
    q = _unit(rng.normal(size=384))
    vectors = [_unit(q + s * _unit(rng.normal(size=384))) for s in (0.05, 0.2, 0.5, 1.5, 5.0)]
    ids = _synthetic(vectors, environments=["prod"] * 5)
    results = selectors.similar_items(query_vector=q, k=3)
    assert [r.item.pk for r in results] == ids[:3]
    assert 1.0 >= results[0].similarity > results[1].similarity > results[2].similarity > 0.5
    assert [r.item.pk for r in selectors.similar_items(query_vector=q, k=2, exclude_item_ids=[ids[0]])] == ids[1:3]


def selective_case() -> tuple[np.ndarray, list[np.ndarray], list[int]]:
    """300 items near the query in 'prod', 12 far ones in 'test', with sequential scans, bitmap scans and sorts off
    for the test's transaction, so the plan is the HNSW index scan whatever the table size. Returns the query, the
    far vectors and the item ids (near ones first)."""
    rng = np.random.default_rng(2)
    q = _unit(rng.normal(size=384))
    near = [_unit(q + 0.8 * _unit(rng.normal(size=384))) for _ in range(300)]
    far = [_unit(rng.normal(size=384)) for _ in range(12)]
    ids = _synthetic(near + far, environments=["prod"] * 300 + ["test"] * 12)
    with connection.cursor() as cursor:  # SET LOCAL: lasts until the test's transaction ends
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute("SET LOCAL enable_bitmapscan = off")
        cursor.execute("SET LOCAL enable_sort = off")
        cursor.execute("ANALYZE recall_embedding")
    return q, far, ids


def test_selective_filter_still_returns_k_thanks_to_iterative_scan():
    """300 items near the query in 'prod', 12 far ones in 'test': the index must walk past hundreds of candidates.
    Sequential scans and sorts are switched off so the plan is the HNSW index scan whatever the table size (on a
    small table the planner rightly prefers an exact scan of the few matching rows)."""
    q, far, ids = selective_case()
    only_test = RecallFilters(environment="test")
    without = selectors.nearest_ids(query_vector=q, k=10, filters=only_test, iterative=False)
    assert len(without) < 10  # the control: a plain HNSW scan runs out of candidates
    hits = selectors.nearest_ids(query_vector=q, k=10, filters=only_test)
    assert len(hits) == 10 and {pk for pk, _ in hits} <= set(ids[300:])
    exact = sorted(ids[300:], key=lambda pk: -float(far[ids.index(pk) - 300] @ q))[:10]
    assert [pk for pk, _ in hits] == exact  # sorted back into exact order
    distances = [d for _, d in hits]
    assert distances == sorted(distances)


def test_filters_by_columns_tags_dates_source_and_resolution(moderator, expert, reply_turn, embed_all):
    tag = Tag.objects.get(slug="too-vague")
    conv = make_conversation(
        turns=[("user", "How do I block my card?"), ("assistant", "Call us.")],
        feedback={1: [{"kind": "thumbs_down", "text": "the card blocking answer is too vague",
                       "categories": ["too vague"], "created_at": dt.datetime(2026, 2, 10, 9, tzinfo=dt.UTC)}]},
        environment="test", model_version="m-2", user_role="retail",
    )  # fmt: skip
    event = FeedbackEvent.objects.get(conversation=conv)
    services.feedback_items_sync_for_feedback_events(event_ids=[event.pk])
    annotation = review.annotation_create(actor=moderator, turn=reply_turn, body="card blocking steps are vague")
    services.feedback_item_sync_for_annotation(annotation_id=annotation.pk)
    embed_all()
    event_item = FeedbackItem.objects.get(feedback_event=event)
    ann_item = FeedbackItem.objects.get(annotation=annotation)

    def found(**filters) -> set[int]:
        results = selectors.similar_to_text(text="how to block a card", k=10, filters=RecallFilters(**filters))
        return {r.item.pk for r in results}

    both = {event_item.pk, ann_item.pk}
    assert found() == both
    assert found(environment="test") == found(model_version="m-2") == found(user_role="retail") == {event_item.pk}
    assert found(tag_ids=[tag.pk]) == {event_item.pk}
    assert found(source=SourceKind.ANNOTATION) == {ann_item.pk}
    assert found(date_from=dt.date(2026, 2, 10), date_to=dt.date(2026, 2, 10)) == {event_item.pk}
    assert found(date_to=dt.date(2026, 2, 9)) == set()
    assert found(resolved_only=True) == set()
    Correction.objects.create(conversation=conv, turn=event_item.turn, text="Use Cards > Block.", base_hash="x",
                              status=CorrectionStatus.APPROVED, created_by=expert, updated_by=expert)
    services.feedback_items_refresh_resolution(turn_ids=[event_item.turn_id])
    assert found(resolved_only=True) == {event_item.pk}
    with pytest.raises(ValueError, match="unknown source"):
        found(source="nope")


def test_similar_to_item_excludes_itself_and_results_load_in_fixed_queries(
    expert, embed_all, django_assert_num_queries
):
    for i in range(6):
        conv = make_conversation(
            turns=[("user", f"Is my transfer {i} instant?"), ("assistant", "Yes, always.")],
            feedback={1: [{"kind": "comment", "text": f"transfers are not instant on weekends ({i})",
                           "categories": ["too vague", "factually incorrect"]}]},
        )
        turn = conv.turns.get(position=1)
        if i % 2:
            Correction.objects.create(conversation=conv, turn=turn, text="Not on weekends.", base_hash="x",
                                      created_by=expert, updated_by=expert)
    services.feedback_items_sync_for_feedback_events(event_ids=FeedbackEvent.objects.values_list("pk", flat=True))
    embed_all()
    first = FeedbackItem.objects.order_by("id").first()
    results = selectors.similar_to_item(item_id=first.pk, k=5)
    assert len(results) == 5 and first.pk not in {r.item.pk for r in results}

    vector = Embedding.objects.get(item=first).vector
    # active model, savepoint, settings, search, release, items (+conversation, turn, correction, source), tags
    with django_assert_num_queries(7):
        results = selectors.similar_items(query_vector=vector, k=5)
        shown = [
            (r.item.conversation.title, r.item.turn.content, [t.name for t in r.item.tags],
             getattr(selectors.correction_of(r.item), "text", None), r.item.feedback_event.kind)
            for r in results
        ]
    assert len(shown) == 5 and all(s[2] == ["factually incorrect", "too vague"] for s in shown)
    assert {s[3] for s in shown} == {None, "Not on weekends."}
