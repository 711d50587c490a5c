"""Reviewers' work on the imported demo set, done through the apps' own services so every feature has something
to show on a fresh start: span comments with tags and reply threads, suggested edits (some accepted, some pending),
corrected replies (most approved), a curated dataset with a cut version, and triage clusters in several states with
a guidance note that the recall API returns.

The reviewers are demo accounts without a usable password (one per role): they are authors, not logins.
Everything is chosen deterministically from the imported conversations (ordered by id), so a run is reproducible;
``seed_reviews`` does nothing when the demo set already carries annotations.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group

from annotations import anchoring
from annotations import services as review
from annotations.curation import services as curation
from annotations.curation.models import Dataset
from annotations.models import Annotation, AnnotationKind, Tag
from annotations.recall import embedding
from annotations.recall import services as recall
from annotations.triage import actions, job
from annotations.triage.models import Cluster, Resolution, Status
from feedbackhub import roles
from sessions.models import Conversation, FeedbackEvent, Turn, TurnRole

#: (username, display name, role) of the demo reviewers.
REVIEWERS = (
    ("maya.moderator", "Maya", roles.MODERATOR),
    ("theo.expert", "Theo", roles.DOMAIN_EXPERT),
    ("ines.expert", "Inès", roles.DOMAIN_EXPERT),
    ("sam.analyst", "Sam", roles.PRODUCT_ANALYST),
)
DATASET_NAME = "Support replies, corrected"

COMMENTS = (
    "This dodges the question: the policy article in the context has the exact answer.",
    "Generic filler. The user asked about their own case and we had the data to answer it.",
    "The figure here does not match the retrieved document.",
    "Misses the follow-up step the user needs to take.",
)
THREAD_REPLIES = (
    "Agreed. Same pattern in several conversations this week; I'll raise it with the prompt owners.",
    "Confirmed with the policy team: the retrieved article is current.",
)
GUIDANCE = (
    "Answer from the retrieved policy article and the account tools; quote figures exactly. If the tools show the "
    "customer's own data, use it rather than a generic list of reasons. Hand over to a person for fraud or identity "
    "checks."
)


@dataclass
class ReviewCounts:
    comments: int = 0
    replies: int = 0
    suggestions: int = 0
    accepted: int = 0
    corrections: int = 0
    approved: int = 0
    examples: int = 0
    versions: int = 0
    clusters: int = 0


def reviewers() -> dict[str, object]:
    """The demo reviewers by role, created on first use (no usable password: they cannot log in)."""
    users = {}
    model = get_user_model()
    for username, first_name, role in REVIEWERS:
        user, created = model.objects.get_or_create(username=username, defaults={"first_name": first_name})
        if created:
            user.set_unusable_password()
            user.save(update_fields=["password"])
        group = Group.objects.filter(name=role).first()
        if group is not None:
            user.groups.add(group)
        users.setdefault(role, []).append(user)
    return users


def _first_sentence(text: str) -> tuple[int, int]:
    """Code-point span of the reply's first sentence (at most 200 characters)."""
    match = re.search(r"[.!?](\s|$)", text)
    end = match.start() + 1 if match else len(text)
    return 0, min(end, 200)


def _weak_replies(source: str, limit: int) -> list[Turn]:
    """Assistant replies of the demo set that end users flagged, in a stable order."""
    # Read as a list first: as one query with a subquery, PostgreSQL planned it against the statistics of whatever
    # the tables held last, and after other data had been analysed it once ran for minutes on a few hundred rows.
    flagged = set(FeedbackEvent.objects.filter(
        conversation__source=source, is_negative=True, turn__role=TurnRole.ASSISTANT
    ).values_list("turn_id", flat=True))
    return list(
        Turn.objects.filter(pk__in=flagged).select_related("conversation").order_by("conversation__external_id",
                                                                                   "position")[:limit]
    )


def _better_reply(turn: Turn) -> str:
    """What the reply should have said: the model's next, accepted answer in the conversation, or else the end
    user's own correction."""
    later = (
        Turn.objects.filter(conversation_id=turn.conversation_id, role=TurnRole.ASSISTANT, position__gt=turn.position)
        .order_by("position")
        .values_list("content", flat=True)
        .first()
    )
    if later:
        return later
    return (
        FeedbackEvent.objects.filter(turn=turn).exclude(correction="").values_list("correction", flat=True).first()
        or ""
    )


def _tag_for(turn: Turn) -> Tag | None:
    categories = FeedbackEvent.objects.filter(turn=turn).values_list("categories", flat=True)
    names = [name for row in categories for name in row]
    by_name = {t.name.lower(): t for t in Tag.objects.filter(is_active=True)}
    for name in names:
        if name.lower() in by_name:
            return by_name[name.lower()]
    return by_name.get("too vague")


def _comment(actor, turn: Turn, body: str, tag: Tag | None) -> Annotation:
    start, end = _first_sentence(turn.content)
    return review.annotation_create(
        actor=actor, turn=turn, body=body, tag_ids=[tag.pk] if tag else [], start=start, end=end,
        exact=turn.content[start:end], text_hash=anchoring.text_hash(turn.content),
    )


def _suggest(actor, turn: Turn, better: str) -> Annotation:
    """Suggest the better reply's first sentence in place of the reply's first sentence."""
    start, end = _first_sentence(turn.content)
    b_start, b_end = _first_sentence(better)
    return review.annotation_create(
        actor=actor, turn=turn, kind=AnnotationKind.SUGGESTION, body="Lead with the specific answer.",
        start=start, end=end, exact=turn.content[start:end], text_hash=anchoring.text_hash(turn.content),
        replacement=better[b_start:b_end],
    )


def seed_reviews(*, source: str) -> ReviewCounts:
    """Review the demo conversations of ``source`` as the demo reviewers would; returns what was written."""
    counts = ReviewCounts()
    if Annotation.objects.filter(turn__conversation__source=source).exists():
        return counts
    users = reviewers()
    moderator = users[roles.MODERATOR][0]
    expert, second_expert = users[roles.DOMAIN_EXPERT][:2]
    weak = _weak_replies(source, limit=40)

    # Span comments with a tag, half of them with a reply from another reviewer.
    for i, turn in enumerate(weak[:16]):
        author = (moderator, expert, second_expert)[i % 3]
        annotation = _comment(author, turn, COMMENTS[i % len(COMMENTS)], _tag_for(turn))
        counts.comments += 1
        if i % 2 == 0:
            replier = expert if author != expert else moderator
            review.reply_create(actor=replier, annotation_id=annotation.pk, body=THREAD_REPLIES[(i // 2) % 2])
            counts.replies += 1

    # Suggested edits: the first few accepted by another expert, the rest left pending.
    for i, turn in enumerate(weak[16:26]):
        better = _better_reply(turn)
        if not better:
            continue
        suggestion = _suggest(second_expert, turn, better)
        counts.suggestions += 1
        if i < 4:
            review.suggestion_decide(actor=expert, annotation_id=suggestion.pk, version=suggestion.version,
                                     accept=True)
            counts.accepted += 1

    # Whole corrected replies, most approved by a second expert.
    approved_ids = []
    for i, turn in enumerate(weak[26:40]):
        better = _better_reply(turn)
        if not better:
            continue
        correction = review.correction_save(actor=expert, turn=turn, text=better,
                                            rationale="Answer with the specifics the context provides.")
        counts.corrections += 1
        if i % 5 != 4:
            correction = review.correction_approve(actor=second_expert, correction_id=correction.pk,
                                                   version=correction.version)
            approved_ids.append(correction.pk)
            counts.approved += 1

    # A curated dataset of the approved corrections, reviewed, with its first version cut.
    if approved_ids and not Dataset.objects.filter(name=DATASET_NAME).exists():
        dataset = curation.dataset_create(actor=expert, name=DATASET_NAME,
                                          description="Approved corrections of flagged support replies.")
        curation.examples_add(actor=expert, dataset=dataset, correction_ids=approved_ids)
        for example in dataset.examples.order_by("id"):
            curation.example_review(actor=second_expert, example_id=example.pk, decision="approve")
            counts.examples += 1
        curation.version_cut(actor=second_expert, dataset=dataset, note="First cut for the fine-tune.")
        counts.versions += 1
    return counts


def seed_triage(*, source: str) -> int:
    """Feedback items of the demo set, their vectors and the clusters, then a few moderator decisions so the queue
    shows clusters in several states. Embeds here rather than on a worker: the first start has none running yet."""
    batch_ids = Conversation.objects.filter(source=source).values_list("last_import_id", flat=True).distinct()
    for batch_id in batch_ids:
        if batch_id is not None:
            recall.feedback_items_sync_for_import(batch_id=batch_id)
    for annotation_id in Annotation.objects.filter(turn__conversation__source=source).values_list("pk", flat=True):
        recall.feedback_item_sync_for_annotation(annotation_id=annotation_id)
    embedding.embeddings_embed_pending(chunk_size=settings.EMBEDDING_CHUNK_SIZE)
    job.triage_run()

    users = reviewers()
    moderator = users[roles.MODERATOR][0]
    expert = users[roles.DOMAIN_EXPERT][0]
    clusters = list(Cluster.objects.filter(is_open=True).order_by("-priority", "id")[:4])
    if len(clusters) >= 1:
        actions.cluster_claim(actor=moderator, cluster_id=clusters[0].pk)
    if len(clusters) >= 2:
        actions.clusters_route(actor=moderator, cluster_ids=[clusters[1].pk], assignee_id=expert.pk)
        actions.cluster_set_guidance(actor=expert, cluster_id=clusters[1].pk, guidance=GUIDANCE)
    if len(clusters) >= 3:
        actions.cluster_set_status(actor=moderator, cluster_id=clusters[2].pk, status=Status.CLOSED,
                                  resolution=Resolution.FIXED)
    return Cluster.objects.count()
