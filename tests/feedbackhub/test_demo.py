import io
import json
from collections import Counter

import pytest
from django.core.management import call_command
from django.test import Client

from annotations.curation.models import DatasetVersion
from annotations.models import Annotation, AnnotationKind, Correction, CorrectionStatus, SuggestionState
from annotations.recall.models import FeedbackItem
from annotations.triage.models import Cluster, Status
from feedbackhub import auth_tokens
from feedbackhub.demo import generator, seeding
from feedbackhub.demo.scenarios import demo_set
from sessions.models import (
    Conversation,
    Environment,
    FeedbackEvent,
    FeedbackKind,
    ImportBatch,
    ImportStatus,
    Turn,
    TurnRole,
)


def _jsonl(count=generator.DEFAULT_COUNT, seed=generator.DEFAULT_SEED) -> str:
    out = io.StringIO()
    assert generator.write_jsonl(out, count=count, seed=seed) == count
    return out.getvalue()


def test_same_seed_gives_the_same_data_and_another_seed_other_data():
    assert _jsonl(seed=7) == _jsonl(seed=7)
    assert _jsonl(seed=7) != _jsonl(seed=8)


def test_demo_set_is_varied_and_covers_every_feedback_kind():
    records = [json.loads(line) for line in _jsonl().splitlines()]
    assert len(records) == generator.DEFAULT_COUNT
    assert len({r["id"] for r in records}) == len(records)
    assert len({r["metadata"]["domain"] for r in records}) >= 4
    assert {r["environment"] for r in records} == set(Environment.values)
    assert len({r["model_version"] for r in records}) >= 6
    assert len({r["user"]["role"] for r in records}) >= 8
    assert Counter(len(r["turns"]) > 2 for r in records)[True] >= 100  # many multi-turn conversations

    turns = [t for r in records for t in r["turns"]]
    assistant = [t for t in turns if t["role"] == TurnRole.ASSISTANT]
    assert all(t["context"]["system_prompt"] for t in assistant)
    docs = [d for t in assistant for d in t["context"].get("retrieved_documents", [])]
    assert docs and all(0 < d["score"] < 1 and d["id"] and d["title"] and d["text"] for d in docs)
    tools = [c for t in assistant for c in t["context"].get("tool_calls", [])]
    assert tools and all(c["name"] and c["arguments"] and c["result"] for c in tools)
    assert all(t["latency_ms"] > 0 and t["usage"]["completion_tokens"] > 0 and 0 < t["confidence"] < 1
               for t in assistant)

    feedback = [f for t in turns for f in t.get("feedback", [])]
    assert {f["type"] for f in feedback} == set(FeedbackKind.values)
    negative_categories = {c for f in feedback for c in f.get("categories", [])}
    assert {"factually incorrect", "too vague", "wrong tone", "incomplete"} <= negative_categories
    assert any(f["type"] == "comment" and f.get("text") for f in feedback)
    assert any(f["type"] == "correction" and f.get("correction") for f in feedback)
    assert {f["rating"] for f in feedback if f["type"] == "rating"} >= {1, 2, 4, 5}
    # Real sentences, not placeholders: every slot was filled.
    text = json.dumps(records)
    assert "{" + "country}" not in text and "lorem" not in text.lower()


def test_small_sets_still_cover_every_feedback_kind():
    records = [json.loads(line) for line in _jsonl(count=len(FeedbackKind)).splitlines()]
    assert {f["type"] for r in records for t in r["turns"] for f in t.get("feedback", [])} == set(FeedbackKind.values)


@pytest.mark.django_db
def test_demo_imports_through_the_pipeline_and_again_changes_nothing():
    batch = seeding.demo_import(count=60, seed=11)
    assert batch.status == ImportStatus.DONE, batch.error
    assert batch.source == demo_set().source
    assert (batch.conversations_created, batch.records_rejected) == (60, 0)
    counts = (Conversation.objects.count(), Turn.objects.count(), FeedbackEvent.objects.count())
    assert counts[0] == 60 and counts[1] > 120 and counts[2] > 30
    assert set(FeedbackEvent.objects.values_list("kind", flat=True)) == set(FeedbackKind.values)
    assert Conversation.objects.filter(has_negative_feedback=True).exists()

    again = seeding.demo_import(count=60, seed=11)
    assert again.status == ImportStatus.DONE
    assert (again.conversations_created, again.conversations_updated, again.conversations_unchanged) == (0, 0, 60)
    assert (Conversation.objects.count(), Turn.objects.count(), FeedbackEvent.objects.count()) == counts


@pytest.mark.django_db
def test_seed_demo_command_if_empty_loads_once():
    out = io.StringIO()
    call_command("seed_demo", "--count", "15", "--if-empty", "--no-reviews", stdout=out)
    assert "15 created" in out.getvalue()
    assert Conversation.objects.filter(source=demo_set().source).count() == 15

    out = io.StringIO()
    call_command("seed_demo", "--count", "15", "--if-empty", "--no-reviews", stdout=out)
    assert "not loaded" in out.getvalue()
    assert ImportBatch.objects.count() == 1


@pytest.mark.django_db
def test_the_demo_shows_every_feature_reviews_corrections_a_cut_dataset_clusters_and_recall_examples():
    """A fresh demo has reviewers' work on it: what the review, curation, triage and recall pages show."""
    result = seeding.demo_seed(count=120, seed=3)
    done = result.reviews
    assert result.batch.status == ImportStatus.DONE, result.batch.error
    assert done.comments >= 10 and done.replies >= 5
    assert done.suggestions >= 4 and 0 < done.accepted < done.suggestions  # some accepted, some still pending
    assert done.corrections >= 4 and 0 < done.approved < done.corrections + done.accepted
    assert done.examples >= 3 and done.versions == 1
    assert Annotation.objects.filter(kind=AnnotationKind.SUGGESTION, suggestion_state=SuggestionState.PENDING).exists()
    assert Annotation.objects.filter(replies__isnull=False).exists()
    assert Annotation.objects.filter(tags__isnull=False).exists()
    assert Correction.objects.filter(status=CorrectionStatus.APPROVED).exists()
    version = DatasetVersion.objects.get()
    assert version.example_count == done.examples and version.sha256

    # A review queue with two blind reviews on its first replies, agreement figures and replies to adjudicate.
    from annotations.queues import selectors as queue_selectors
    from annotations.queues.models import ReviewQueue

    queue = ReviewQueue.objects.get()
    assert result.queue_items == queue.items.count() >= 5
    progress = queue_selectors.queue_progress(queue)
    assert progress.complete == 5 and progress.reviews_done == 10
    report = queue_selectors.agreement_report(queue)
    assert report["pairs"] and all(f["items"] == 5 for f in report["fields"])
    assert queue_selectors.items_to_adjudicate(queue)

    # Every item has its vector, and the clusters are in several states, one with guidance.
    assert not FeedbackItem.objects.filter(is_active=True, embedding_pending=True).exists()
    assert result.clusters >= 3
    states = set(Cluster.objects.values_list("status", flat=True))
    assert {Status.NEEDS_EXPERT, Status.CLOSED} <= states
    assert Cluster.objects.filter(claimed_by__isnull=False).exists()
    assert Cluster.objects.exclude(guidance="").exists()

    # The recall API has corrected examples to give an LLM app.
    client = Client()
    # The default gate (four_eyes) returns the demo's corrections: a second expert approves them.
    token = auth_tokens.api_token_create(name="demo test", scopes=["recall"], all_sources=True)[1]
    approved = Correction.objects.filter(status=CorrectionStatus.APPROVED).select_related("turn").first()
    question = Turn.objects.filter(conversation_id=approved.turn.conversation_id, position__lt=approved.turn.position,
                                   role=TurnRole.USER).order_by("-position").first()
    response = client.post("/api/v1/recall", {"input": question.content, "k": 5}, content_type="application/json",
                           headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200, response.content
    assert response.json()["examples"], response.json()

    # Seeding again changes nothing.
    again = seeding.demo_seed(count=120, seed=3)
    assert again.reviews.comments == 0 and DatasetVersion.objects.count() == 1
