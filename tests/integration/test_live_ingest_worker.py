"""Live ingest end to end with a real worker: a conversation and an end-user feedback event sent through the API
become feedback items, get their vectors and join the triage queue, without waiting for beat."""

from __future__ import annotations

import json

import pytest
from django.test import Client

from annotations.recall.models import Embedding, FeedbackItem
from annotations.triage.models import ClusterMember
from feedbackhub import auth_tokens
from sessions.models import FeedbackEvent
from tests.integration.worker import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

def test_api_feedback_reaches_recall_and_triage(celery_worker):
    secret = auth_tokens.api_token_create(name="bank app", scopes=["ingest"], sources=["bank"])[1]
    api = Client()
    auth = {"HTTP_AUTHORIZATION": f"Bearer {secret}"}
    record = {"id": "live-1", "turns": [
        {"role": "user", "content": "How do I reset my card PIN?"},
        {"role": "assistant", "content": "Open Cards > PIN in the app.",
         "feedback": [{"id": "imported-1", "type": "thumbs_down", "text": "there is no PIN entry under Cards"}]},
    ]}  # fmt: skip
    response = api.post("/api/v1/conversations", data=json.dumps({"conversations": [record]}),
                        content_type="application/json", **auth)
    assert response.json()["counts"] == {"created": 1}
    response = api.post("/api/v1/feedback", content_type="application/json", **auth, data=json.dumps(
        {"conversation": "live-1", "turn": 1, "id": "live-evt", "type": "thumbs_down",
         "categories": ["factually incorrect"], "text": "The PIN is reset at an ATM, not in the app."}))
    assert response.status_code == 201
    live = FeedbackEvent.objects.get(event_key="live-evt")

    wait_for("the live event's item and vector",
              lambda: Embedding.objects.filter(item__feedback_event=live).exists(), celery_worker)
    item = FeedbackItem.objects.get(feedback_event=live)
    assert "The PIN is reset at an ATM" in item.text
    wait_for("the imported event's vector",
              lambda: Embedding.objects.filter(item__feedback_event__event_key="imported-1").exists(), celery_worker)
    # Clustering is sent when the vectors are written (beat does not run in this test).
    wait_for("the triage queue", lambda: ClusterMember.objects.filter(item=item).exists(), celery_worker)
