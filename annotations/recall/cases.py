"""What a similar past case shows, for the recall API, the similar-cases panel and the search page.

``cases_for(similar)`` turns the recall selectors' ``SimilarItem`` list into :class:`Case` rows with one more query
whatever the length: the user input that led to each item's reply, the reply's correction (approved or draft), the
source annotation's status and text, and the item's tags. Everything returned is plain data; templates
escape it and the API serialises it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from django.db.models import OuterRef, Subquery
from django.urls import reverse

from annotations import visibility
from annotations.models import AnnotationStatus, CorrectionStatus, Tag
from annotations.recall import selectors
from sessions.models import Turn, TurnRole


@dataclass
class Case:
    """One similar item with what reviewers and the API show of it."""

    item: Any  # annotations.recall.models.FeedbackItem
    similarity: float
    user_input: str = ""
    reply: str = ""
    correction_text: str = ""
    correction_status: str = ""  # "", "draft" or "approved"
    correction_rationale: str = ""
    annotation_id: int | None = None
    annotation_body: str = ""
    annotation_quote: str = ""
    annotation_status: str = ""  # "", "open" or "resolved"
    tags: list[Tag] = field(default_factory=list)
    #: Filled by other apps (triage: the item's problem cluster and its status), see ``CASE_EXTENSIONS``.
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def percent(self) -> int:
        return max(0, min(100, round(self.similarity * 100)))

    @property
    def status(self) -> str:
        """open or resolved: the annotation's status, or resolved when the reply has an approved correction."""
        if self.correction_status == CorrectionStatus.APPROVED or self.annotation_status == AnnotationStatus.RESOLVED:
            return "resolved"
        return "open"

    @property
    def url(self) -> str:
        """The review workspace at the item's span (its annotation card) or at the reply it is about."""
        base = reverse("annotations:review", args=[self.item.conversation_id])
        if self.annotation_id is not None:
            return f"{base}#card-{self.annotation_id}"
        return f"{base}#turn-{self.item.turn_id}"


#: Callables ``(cases: list[Case]) -> None`` that add to ``case.extra``; each runs once per list, so it can read
#: what it needs in one query. Register from an AppConfig.ready(). The triage app sets ``case.extra["cluster"] =
#: {"label": ..., "status": ..., "url": ...}``, which the case list shows as a badge.
CASE_EXTENSIONS: list = []


def visible_to(viewer, similar: Sequence[Any]) -> list[Any]:  # noqa: ANN001
    """``similar`` without the items on replies where ``viewer`` must not see others' work yet (a blind review
    queue: ``annotations.visibility``): a past case would show another reviewer's judgement of a reply the viewer
    has still to review. One query; none for people who review nothing."""
    blind = visibility.blind_turns_among(viewer, {s.item.conversation_id for s in similar})
    return [s for s in similar if s.item.turn_id not in blind]


def cases_for(similar: Sequence[Any]) -> list[Case]:
    """Cases for ``similar`` (``SimilarItem`` rows from the recall selectors, which come with their turn, the
    turn's correction, the annotation and the tags), in the same order. One query: the user inputs."""
    cases = [Case(item=s.item, similarity=float(s.similarity)) for s in similar]
    if not cases:
        return cases
    previous_user = (
        Turn.objects.filter(
            conversation_id=OuterRef("conversation_id"), role=TurnRole.USER, position__lt=OuterRef("position")
        )
        .order_by("-position")
        .values("content")[:1]
    )
    inputs = dict(
        Turn.objects.filter(pk__in={c.item.turn_id for c in cases})
        .annotate(user_input=Subquery(previous_user))
        .values_list("pk", "user_input")
    )
    for case in cases:
        item = case.item
        turn = item.turn
        if turn.role == TurnRole.USER:
            case.user_input = turn.content
        else:
            case.user_input = inputs.get(turn.pk) or ""
            case.reply = turn.content
        correction = selectors.correction_of(item)
        if correction is not None:
            case.correction_text = correction.text
            case.correction_status = correction.status
            case.correction_rationale = correction.rationale
        annotation = item.annotation if item.annotation_id else None
        if annotation is not None:
            case.annotation_id = annotation.pk
            case.annotation_body = annotation.body
            case.annotation_quote = annotation.exact
            case.annotation_status = annotation.status
        case.tags = list(item.tags)
    for extend in CASE_EXTENSIONS:
        extend(cases)
    return cases
