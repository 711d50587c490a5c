"""Review queues with a real worker: a live queue takes in conversations sent through the ingest API as soon as
their batch is stored, and while a reviewer works on an item the worker renders their next items ahead, so opening
the next one renders no reply in the request."""

from __future__ import annotations

import json
import re

import pytest
from django.test import Client
from django.urls import reverse

from annotations import selectors as review_selectors
from annotations import services as review
from annotations.queues import services
from annotations.queues.models import QueueItem, Review, ReviewState
from feedbackhub import auth_tokens, roles
from tests.conftest import _user
from tests.integration.worker import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def test_live_queue_and_next_items_rendered_ahead_by_the_worker(celery_worker, monkeypatch):
    moderator = _user("mod", roles.MODERATOR)
    reviewer = _user("rev", roles.DOMAIN_EXPERT)
    helpful = review.score_config_save(actor=moderator, key="helpfulness", name="Helpfulness", kind="numeric",
                                       minimum=1, maximum=5, step=1)
    queue = services.queue_create(actor=moderator, spec=services.QueueSpec(
        name="Bank replies", query_string="source=bank", mode="live", rubric=[helpful], reviewers=[reviewer]))
    assert not QueueItem.objects.filter(queue=queue).exists()

    secret = auth_tokens.api_token_create(name="bank app", scopes=["ingest"], sources=["bank"])[1]
    records = [{"id": f"live-{i}", "turns": [
        {"role": "user", "content": f"Question {i}: how do I reset my card PIN?"},
        {"role": "assistant", "content": f"Answer {i}: open Cards > PIN in the app."},
    ]} for i in range(3)]  # fmt: skip
    response = Client().post("/api/v1/conversations", data=json.dumps({"source": "bank", "conversations": records}),
                             content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {secret}")
    assert response.json()["counts"] == {"created": 3}
    wait_for("the live queue to take in the new replies",
             lambda: QueueItem.objects.filter(queue=queue).count() == 3, celery_worker)

    client = Client()
    client.force_login(reviewer)
    url = reverse("queues:next", args=[queue.pk])
    assert client.get(url).status_code == 200
    warmed = re.compile(r"Task queues\.warm_upcoming\[[^\]]+\] succeeded")
    wait_for("the worker to render the next items ahead", lambda: warmed.search(celery_worker.output()),
             celery_worker)
    held = Review.objects.get(reviewer=reviewer, state=ReviewState.IN_PROGRESS)
    services.review_complete(queue=queue, item_id=held.item_id, reviewer=reviewer, answers={helpful: "4"})

    def not_in_the_request(ids):
        raise AssertionError(f"turns {ids} were rendered in the request")

    monkeypatch.setattr(review_selectors, "turns_full", not_in_the_request)
    page = client.get(url)
    assert page.status_code == 200 and b"rubric-form" in page.content
    assert Review.objects.get(reviewer=reviewer, state=ReviewState.IN_PROGRESS).item.position == 2
