"""The whole demo run: generate the conversations, import them through the real pipeline, then review them."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

from feedbackhub.demo import generator, queues, reviews
from feedbackhub.demo.scenarios import demo_set
from sessions.models import Conversation, ImportBatch
from sessions.services import import_file


@dataclass
class DemoResult:
    batch: ImportBatch
    reviews: reviews.ReviewCounts
    clusters: int
    queue_items: int = 0


def database_is_empty() -> bool:
    """True when nothing was ever imported: no conversation and no import batch."""
    return not Conversation.objects.exists() and not ImportBatch.objects.exists()


def demo_import(*, count: int = generator.DEFAULT_COUNT, seed: int = generator.DEFAULT_SEED, user=None,
                progress=None) -> ImportBatch:
    """Generate the demo set and import it through the real import pipeline (source ``demo``); return the batch."""
    with tempfile.TemporaryDirectory(prefix="feedbackhub-demo-") as folder:
        path = Path(folder) / f"demo-seed{seed}-{count}.jsonl"
        with open(path, "w", encoding="utf-8") as fh:
            generator.write_jsonl(fh, count=count, seed=seed)
        return import_file(path=path, source=demo_set().source, format="native", user=user, progress=progress)


def demo_seed(*, count: int = generator.DEFAULT_COUNT, seed: int = generator.DEFAULT_SEED,
              with_reviews: bool = True) -> DemoResult:
    """Import the demo conversations, then (``with_reviews``) the reviewers' work, the triage clusters and a review
    queue with its first reviews."""
    batch = demo_import(count=count, seed=seed)
    counts = reviews.ReviewCounts()
    clusters = queue_items = 0
    if with_reviews:
        counts = reviews.seed_reviews(source=demo_set().source)
        queue_items = queues.seed_queue()  # before triage, which embeds every annotation of the set
        clusters = reviews.seed_triage(source=demo_set().source)
    return DemoResult(batch=batch, reviews=counts, clusters=clusters, queue_items=queue_items)
