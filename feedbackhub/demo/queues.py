"""A review queue in the demo: a three-field rubric, a queue of the last reply of conversations with negative
feedback, two blind reviews per reply, and the first replies reviewed by two demo reviewers who do not always agree,
so the queue page shows progress, agreement figures and replies to adjudicate."""

from __future__ import annotations

from annotations import anchoring
from annotations import services as review
from annotations.models import Tag
from annotations.queues import services as queues
from annotations.queues.models import ReviewQueue
from feedbackhub import roles
from feedbackhub.demo.reviews import reviewers

QUEUE_NAME = "Negative feedback: last replies"
#: Items the two demo reviewers work through: (helpfulness, tone, answers the question) of each.
WORK = (
    ((2, "neutral", "no"), (2, "neutral", "no")),
    ((3, "good", "yes"), (2, "good", "no")),
    ((1, "rude", "no"), (1, "rude", "no")),
    ((4, "good", "yes"), (4, "neutral", "yes")),
    ((2, "neutral", "no"), (3, "neutral", "no")),
)


def seed_queue() -> int:
    """Build the demo queue and do the first reviews; returns the queue's number of replies (0 when it exists)."""
    if ReviewQueue.objects.filter(name=QUEUE_NAME).exists():
        return 0
    users = reviewers()
    moderator = users[roles.MODERATOR][0]
    first, second = users[roles.DOMAIN_EXPERT][:2]
    fields = [
        review.score_config_save(actor=moderator, key="helpfulness", name="Helpfulness", kind="numeric",
                                 minimum=1, maximum=5, step=1,
                                 description="1: no help at all, 5: fully answers with the right specifics."),
        review.score_config_save(actor=moderator, key="tone", name="Tone", kind="categorical",
                                 options=["good", "neutral", "rude"]),
        review.score_config_save(actor=moderator, key="answers-question", name="Answers the question",
                                 kind="boolean"),
    ]
    queue = queues.queue_create(actor=moderator, spec=queues.QueueSpec(
        name=QUEUE_NAME, query_string="negative=on", reply_scope="last", reviews_per_item=2, rubric=fields,
        reviewers=[first, second], reviewer_role=roles.DOMAIN_EXPERT,
        description="Score the reply and highlight what went wrong; adjudicate where the two reviews disagree.",
    ))
    tag = Tag.objects.filter(is_active=True).order_by("group", "name").first()
    for index, answers in enumerate(WORK):
        for reviewer, values in zip((first, second), answers, strict=True):
            row = queues.next_review(queue=queue, reviewer=reviewer)
            if row is None:
                return queue.items.count()
            turn = row.item.turn
            end = min(len(turn.content), 40 if index % 2 or reviewer == first else 25)
            if tag is not None and end > 0:
                review.annotation_create(actor=reviewer, turn=turn, tag_ids=[tag.pk], start=0, end=end,
                                         exact=turn.content[:end], text_hash=anchoring.text_hash(turn.content))
            queues.review_complete(queue=queue, item_id=row.item_id, reviewer=reviewer,
                                   answers=dict(zip(fields, map(str, values), strict=True)))
    return queue.items.count()
