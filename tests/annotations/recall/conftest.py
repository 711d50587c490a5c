"""Fixtures for semantic recall: the real embedding model (loaded once per test process) and helpers."""

from __future__ import annotations

import pytest

from annotations.recall import embedding
from annotations.recall.models import FeedbackItem
from feedbackhub import embeddings


@pytest.fixture(scope="session")
def model():
    """The packaged all-MiniLM-L6-v2, loaded once for the run."""

    return embeddings.get_model()


@pytest.fixture
def embed_all(model):
    """Embed every pending item now (what the worker's task does)."""

    def run(**kwargs):
        return embedding.embeddings_embed_pending(**kwargs)

    return run


def items() -> list[FeedbackItem]:
    return list(FeedbackItem.objects.order_by("id"))
