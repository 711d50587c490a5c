"""Past cases for recall API/UI tests, written through the review services and embedded for real.

``build_cases(moderator, expert)`` creates five conversations (a refund-window mistake with an approved
correction, its look-alike in the dev environment, a password-menu mistake with an approved correction, a
resolved shipping comment without a correction, and an open tone complaint), syncs their feedback items and embeds
them with the real model, synchronously. ``REFUND_QUERY`` is a near-duplicate of the first case.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib.auth.models import Group, User

from annotations import anchoring, services
from annotations.models import Annotation, Tag
from annotations.recall import embedding
from annotations.recall import services as recall_services
from feedbackhub import roles
from sessions.models import Conversation, Turn, TurnRole

REFUND_QUERY = "I bought the annual plan 40 days ago. Can I still get my money back?"


@dataclass
class Case:
    conversation: Conversation
    turn: Turn
    annotation: Annotation


@dataclass
class Cases:
    refund: Case
    refund_dev: Case
    password: Case
    shipping: Case
    tone: Case


def make_case(*, moderator, external_id: str, question: str, reply: str, quote: str, comment: str, tag: str,
          environment: str = "prod", source: str = "recall-tests") -> Case:
    conversation = Conversation.objects.create(
        source=source, external_id=external_id, content_hash="0" * 64, title=question[:200],
        environment=environment, model_version="gpt-test-1", user_role="customer",
    )
    Turn.objects.create(conversation=conversation, position=0, role=TurnRole.USER, content=question)
    turn = Turn.objects.create(conversation=conversation, position=1, role=TurnRole.ASSISTANT, content=reply)
    start = reply.index(quote)
    annotation = services.annotation_create(
        actor=moderator, turn=turn, body=comment, tag_ids=[Tag.objects.get(slug=tag).pk],
        start=start, end=start + len(quote), exact=quote, text_hash=anchoring.text_hash(reply),
    )
    return Case(conversation, turn, annotation)


def _writer():
    """The expert who writes the corrections: four-eyes keeps ``expert`` from approving their own."""
    user, _ = User.objects.get_or_create(username="case-writer")
    user.groups.add(Group.objects.get_or_create(name=roles.DOMAIN_EXPERT)[0])
    return user


def _approve(expert, case: Case, text: str, rationale: str) -> None:
    correction = services.correction_save(actor=_writer(), turn=case.turn, text=text, rationale=rationale)
    services.correction_approve(actor=expert, correction_id=correction.pk, version=correction.version)


def _resolve(actor, case: Case) -> None:
    case.annotation.refresh_from_db()
    services.annotation_set_status(
        actor=actor, annotation_id=case.annotation.pk, version=case.annotation.version, resolved=True
    )


def build_cases(moderator, expert, *, embed: bool = True) -> Cases:
    refund = make_case(
        moderator=moderator, external_id="refund", question="Can I get a refund on my annual plan after 45 days?",
        reply="Yes, annual plans can be refunded at any time within 90 days of purchase.",
        quote="within 90 days", comment="Wrong refund window: annual plans are refundable within 30 days only.",
        tag="factually-incorrect",
    )
    refund_dev = make_case(
        moderator=moderator, external_id="refund-dev", environment="dev",
        question="Is a refund possible for the yearly subscription after six weeks?",
        reply="Sure, yearly subscriptions are refundable for 120 days.",
        quote="120 days", comment="Refund window for yearly plans is 30 days, not 120.", tag="factually-incorrect",
    )
    password = make_case(
        moderator=moderator, external_id="password", question="How do I reset my password?",
        reply="Open Profile, then choose Password and click Reset.", quote="Open Profile",
        comment="The reset moved to Settings > Security.", tag="factually-incorrect",
    )
    shipping = make_case(
        moderator=moderator, external_id="shipping", question="Do you ship to Canada?",
        reply="We only ship within the United States.", quote="only ship within the United States",
        comment="We ship to Canada and Mexico since 2025; say so.", tag="incomplete",
    )
    tone = make_case(
        moderator=moderator, external_id="tone", question="Your app crashed and I lost my work!",
        reply="That is not our problem, you should save more often.", quote="That is not our problem",
        comment="Rude: apologise and explain autosave recovery.", tag="wrong-tone",
    )
    _approve(expert, refund, "Annual plans can be refunded within 30 days of purchase. After 30 days we cannot "
             "refund, but you can switch off renewal in Settings > Billing.", "Refund policy R-12: 30 days.")
    _resolve(moderator, refund)
    _approve(expert, refund_dev, "Yearly subscriptions are refundable within 30 days of purchase only.",
             "Policy R-12.")
    _approve(expert, password, "Open Settings, choose Security, then Reset password.", "The menu moved in 4.2.")
    _resolve(moderator, shipping)
    cases = Cases(refund, refund_dev, password, shipping, tone)
    sync_and_embed(cases, embed=embed)
    return cases


def sync_and_embed(cases: Cases, *, embed: bool = True) -> None:
    """What the on-commit hooks and the embed task do in production, run here in the test's own transaction."""
    for case in (cases.refund, cases.refund_dev, cases.password, cases.shipping, cases.tone):
        recall_services.feedback_item_sync_for_annotation(annotation_id=case.annotation.pk)
    if embed:
        embedding.embeddings_embed_pending()
