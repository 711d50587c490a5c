"""Feedback items with chosen vectors, for triage tests (no embedding model needed).

``blob_vectors(k, n)`` draws ``n`` unit vectors around each of ``k`` random centres (cosine distance to the centre
about 0.1; centres about 1.0 apart). ``make_item(vector, text)`` stores a conversation, its negative feedback event,
the recall item and its embedding by the active model, as the recall app would have.
"""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
from django.utils import timezone

from annotations.recall.models import Embedding, FeedbackItem, SourceKind
from annotations.recall.selectors import active_model_name
from annotations.triage.clustering import normalise
from tests.factories import add_feedback, make_conversation

DIM = 384


def centres(k: int, seed: int = 0) -> np.ndarray:
    return normalise(np.random.default_rng(seed).normal(size=(k, DIM)))


def around(centre: np.ndarray, n: int, seed: int = 1, spread: float = 0.024) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return normalise(centre[None, :] + rng.normal(scale=spread, size=(n, DIM)))


def blob_vectors(k: int, n: int, seed: int = 0) -> tuple[np.ndarray, list[int]]:
    cs = centres(k, seed)
    vectors = np.concatenate([around(c, n, seed=seed * 100 + i) for i, c in enumerate(cs)])
    labels = [i for i in range(k) for _ in range(n)]
    return vectors, labels


def make_item(vector: np.ndarray, text: str = "the refund policy answer was wrong", *, environment: str = "prod",
              model_version: str = "gpt-test-1", is_negative: bool = True, occurred_at: dt.datetime | None = None,
              tag_ids: list[int] | None = None) -> FeedbackItem:
    conv = make_conversation(
        turns=[("user", "What is the refund policy?"), ("assistant", "Refunds within 90 days.")],
        feedback={1: [{"kind": "thumbs_down", "text": text}]}, environment=environment, model_version=model_version,
    )
    turn = conv.turns.get(position=1)
    event = turn.feedback_events.first() or add_feedback(turn, kind="thumbs_down", text=text)
    item = FeedbackItem.objects.create(
        source=SourceKind.FEEDBACK_EVENT, feedback_event=event, conversation=conv, turn=turn,
        environment=environment, model_version=model_version, occurred_at=occurred_at or timezone.now(),
        is_negative=is_negative, text=text, text_hash=f"{conv.pk:064x}", tag_ids=tag_ids or [], kind="thumbs_down",
    )
    Embedding.objects.create(item=item, model=active_model_name(), text_hash=item.text_hash,
                             vector=np.asarray(vector, dtype=np.float32))
    return item


def make_items(vectors: np.ndarray, texts: list[str] | None = None, **kwargs) -> list[FeedbackItem]:
    return [make_item(v, texts[i] if texts else f"feedback {i}", **kwargs) for i, v in enumerate(vectors)]


def partition(item_ids_by_cluster: dict[int, list[int]]) -> set[frozenset[int]]:
    return {frozenset(ids) for ids in item_ids_by_cluster.values() if ids}


def current_partition() -> set[frozenset[int]]:
    from annotations.triage.models import ClusterMember  # noqa: PLC0415

    groups: dict[int, list[int]] = {}
    for cluster_id, item_id in ClusterMember.objects.values_list("cluster_id", "item_id"):
        groups.setdefault(cluster_id, []).append(item_id)
    return partition(groups)


def expected_priority(*, size: int, growth_24h: int, max_severity: int, negative_count: int) -> float:
    """The priority formula as docs/triage.md states it, to check the database's generated column against."""
    share = negative_count / size if size else 0.0
    return round(10 * math.log1p(size) + 15 * math.log1p(growth_24h) + 5 * max_severity + 10 * share, 4)
