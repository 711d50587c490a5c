"""Reads of the review workspace. The page loads a whole conversation with its annotations in a fixed number of
queries whatever their count (pinned by a test)."""

from __future__ import annotations

import datetime as dt
import logging
import re
from collections import defaultdict
from dataclasses import dataclass, field

from django.contrib.auth import get_user_model
from django.contrib.postgres.aggregates import ArrayAgg, JSONBAgg
from django.core.cache import cache
from django.db import DEFAULT_DB_ALIAS, connection, transaction
from django.db.models import (
    BooleanField,
    ExpressionWrapper,
    F,
    JSONField,
    OuterRef,
    Prefetch,
    Q,
    QuerySet,
    Subquery,
    Value,
)
from django.db.models.functions import Coalesce, JSONObject
from django.shortcuts import get_object_or_404
from django.utils import timezone

from annotations import anchoring, permissions
from annotations.models import (
    AnchorState,
    Annotation,
    AnnotationReply,
    AuditEvent,
    Correction,
    Score,
    ScoreConfig,
    Tag,
)
from sessions.models import (
    IMPLICIT_KINDS,
    NEGATIVE_KINDS,
    RATING_NEGATIVE_MAX,
    Conversation,
    FeedbackEvent,
    FeedbackKind,
    Turn,
    TurnRole,
)

logger = logging.getLogger(__name__)

#: The taxonomy's cached copy (``all_tags``): dropped whenever a tag is saved or deleted, kept at most this long.
TAXONOMY_CACHE_KEY = "annotations:taxonomy:1"
TAXONOMY_CACHE_SECONDS = 60

#: Polls look this far behind their stamp, so a change committed late with an earlier timestamp is not missed;
#: the browser skips cards it already has in that version.
POLL_OVERLAP = dt.timedelta(seconds=3)


@dataclass
class AnnotationRow:
    """What the page needs of an annotation before its card is rendered (or taken from the cache)."""

    pk: int
    turn_id: int
    start: int | None
    updated_at: dt.datetime
    anchor_state: str
    deleted: bool
    text_hash: str
    author_id: int
    author_name: str
    card_html: str = ""


@dataclass
class TurnView:
    turn: Turn
    text_hash: str = ""
    annotations: list[AnnotationRow] = field(default_factory=list)
    correction: Correction | None = None
    html: str = ""
    #: Rubric scores of the reply the viewer may see, gold first.
    scores: list[Score] = field(default_factory=list)
    #: The viewer sees only their own work on this reply (``annotations.visibility``).
    blind: bool = False


@dataclass
class ReviewData:
    conversation: Conversation
    turns: list[TurnView]
    orphans: list[AnnotationRow]
    tags: list[Tag]  # active ones, for pickers and filters
    all_tags: list[Tag]
    authors: list[tuple[int, str]]
    stamp: str
    #: Assistant turns whose text changed since some of their annotations were made: re-anchor, then read again.
    stale_turns: list[Turn] = field(default_factory=list)


def annotation_queryset() -> QuerySet[Annotation]:
    """Annotations ready for their cards: author joined, tag ids aggregated in the same query (mapped onto the tag
    list the caller already has), the thread prefetched: 2 queries for any number of annotations."""
    return (
        Annotation.objects.select_related("author")
        .annotate(tag_pk_list=ArrayAgg("tags__id", filter=Q(tags__isnull=False), default=Value([])))
        .prefetch_related(
            Prefetch(
                "replies",
                # Deleted replies too: their author sees them with an Undo button, everyone else does not see them.
                queryset=AnnotationReply.objects.select_related("author"),
                to_attr="thread",
            )
        )
    )


def with_tag_lists(annotations: list[Annotation], tags: list[Tag]) -> list[Annotation]:
    """Give each annotation ``tag_list`` (Tag objects in taxonomy order) and ``tag_ids`` (for the browser)."""
    order = {t.pk: i for i, t in enumerate(tags)}
    by_id = {t.pk: t for t in tags}
    for annotation in annotations:
        ids = sorted((i for i in set(annotation.tag_pk_list) if i in by_id), key=order.__getitem__)  # type: ignore[attr-defined]
        annotation.tag_list = [by_id[i] for i in ids]  # type: ignore[attr-defined]
        annotation.tag_ids = " ".join(map(str, ids))  # type: ignore[attr-defined]
    return annotations


def _rows(queryset: QuerySet[Annotation]) -> list[AnnotationRow]:
    # values_list and a boolean for "deleted": a tenth of the cost of model instances for a few hundred rows.
    deleted = ExpressionWrapper(Q(deleted_at__isnull=False), output_field=BooleanField())
    return [
        AnnotationRow(*values)
        for values in queryset.annotate(is_deleted=deleted).values_list(
            "pk", "turn_id", "start", "updated_at", "anchor_state", "is_deleted", "text_hash", "author_id",
            "author__username",
        )
    ]


def annotations_full(ids: list[int], tags: list[Tag]) -> dict[int, Annotation]:
    """Annotations with author, tags and thread, for rendering their cards: 2 queries for any number."""
    return {a.pk: a for a in with_tag_lists(list(annotation_queryset().filter(pk__in=ids)), tags)}


def thread_rows() -> Coalesce:
    """An annotation's reply thread as one JSON array (oldest first, deleted replies too), as an expression to
    annotate annotations with: a service reads it with the row it locks, and ``thread_from_rows`` turns it into the
    replies a card shows, so rendering the card back after a save reads nothing more."""
    reply = JSONObject(
        id="id", author_id="author_id", author=f"author__{get_user_model().USERNAME_FIELD}", body="body",
        version="version", created_at="created_at", updated_at="updated_at", deleted_at="deleted_at",
    )
    rows = (
        AnnotationReply.objects.filter(annotation_id=OuterRef("pk")).order_by().values("annotation_id")
        .annotate(rows=JSONBAgg(reply, order_by=("created_at", "id"))).values("rows")
    )
    return Coalesce(Subquery(rows), Value([], output_field=JSONField()))


def _when(value: str | None) -> dt.datetime | None:
    return dt.datetime.fromisoformat(value) if value else None


def thread_from_rows(annotation_id: int, rows: list[dict]) -> list[AnnotationReply]:
    """The replies of a ``thread_rows()`` JSON array, as model instances loaded from the database (``from_db``)."""
    user_model = get_user_model()
    thread = []
    for row in rows:
        reply = AnnotationReply.from_db(
            DEFAULT_DB_ALIAS,
            ["id", "annotation_id", "author_id", "body", "version", "created_at", "updated_at", "deleted_at"],
            [row["id"], annotation_id, row["author_id"], row["body"], row["version"], _when(row["created_at"]),
             _when(row["updated_at"]), _when(row["deleted_at"])],
        )
        reply.author = user_model.from_db(DEFAULT_DB_ALIAS, ["id", user_model.USERNAME_FIELD],
                                          [row["author_id"], row["author"]])
        thread.append(reply)
    return thread


def prepare_for_card(annotation: Annotation, tags: list[Tag], viewer) -> Annotation:
    """Complete an annotation a service just saved for rendering its card, without re-reading it through
    ``annotation_queryset``: the service read its tag ids (``tag_pk_list``) and thread (``thread_rows``) with the
    row; an instance without them costs a plain query each. The author is the viewer when they wrote it."""
    if not hasattr(annotation, "tag_pk_list"):
        annotation.tag_pk_list = [tag.pk for tag in annotation.tags.all()]  # type: ignore[attr-defined]
    rows = getattr(annotation, "thread_rows", None)
    if rows is not None:
        annotation.thread = thread_from_rows(annotation.pk, rows)  # type: ignore[attr-defined]
    else:
        annotation.thread = list(  # type: ignore[attr-defined]
            AnnotationReply.objects.filter(annotation=annotation).select_related("author").order_by("created_at", "id")
        )
    if annotation.author_id == viewer.pk:
        annotation.author = viewer
    return with_tag_lists([annotation], tags)[0]


def all_tags() -> list[Tag]:
    """The whole taxonomy, inactive tags included (annotations keep showing a tag that was retired).

    Every review request needs it, so it is read through the cache: a copy shared by all processes, dropped when a
    tag is saved or deleted (``forget_taxonomy``, from the Tag signals) and again when that transaction commits, and
    kept at most ``TAXONOMY_CACHE_SECONDS`` (for writes that bypass signals). Inside a transaction it is read from
    the database and not cached: the transaction may hold tag changes nobody else can see yet."""
    shared = not connection.in_atomic_block
    if shared:
        try:
            tags = cache.get(TAXONOMY_CACHE_KEY)
        except Exception:  # the cache is an optimisation: read the database when it is down
            logger.warning("taxonomy cache unavailable", exc_info=True)
            shared, tags = False, None
        if tags is not None:
            return tags
    tags = list(Tag.objects.all())
    if shared:
        try:
            cache.set(TAXONOMY_CACHE_KEY, tags, TAXONOMY_CACHE_SECONDS)
        except Exception:
            logger.warning("taxonomy cache unavailable", exc_info=True)
    return tags


def forget_taxonomy(**_signal: object) -> None:
    """Drop the cached taxonomy now, and again once the current transaction commits (a reader outside it may have
    cached the old tags in between)."""

    def forget() -> None:
        try:
            cache.delete(TAXONOMY_CACHE_KEY)
        except Exception:
            logger.warning("taxonomy cache unavailable; its copy expires within %s s", TAXONOMY_CACHE_SECONDS,
                           exc_info=True)

    forget()
    transaction.on_commit(forget)


def active(tags: list[Tag]) -> list[Tag]:
    """The tags offered in pickers and filters."""
    return [t for t in tags if t.is_active]


#: Fields of a turn only its rendering needs (not read when its rendered html is cached).
TURN_RENDER_ONLY_FIELDS = ("metadata", "system_prompt", "retrieved_documents", "tool_calls", "created_at",
                           "latency_ms", "prompt_tokens", "completion_tokens", "confidence")


def turns_full(ids: list[int]) -> dict[int, Turn]:
    """Whole turns (system context included) for rendering them, each with its end-user feedback events
    (``feedback``, oldest first): one query for any number."""
    turns = Turn.objects.defer("metadata").annotate(feedback_rows=feedback_rows()).in_bulk(ids)
    for turn in turns.values():
        turn.feedback = feedback_from_rows(turn.feedback_rows)  # type: ignore[attr-defined]
    return turns


#: The fields of a feedback event the review page shows.
FEEDBACK_FIELDS = ("id", "kind", "rating", "categories", "text", "correction", "is_negative", "created_at", "origin")


def feedback_rows() -> Coalesce:
    """A turn's end-user feedback events as one JSON array, as an expression to annotate turns with (read with the
    turns, so rendering a reply costs no query more)."""
    rows = (
        FeedbackEvent.objects.filter(turn_id=OuterRef("pk")).order_by().values("turn_id")
        .annotate(rows=JSONBAgg(JSONObject(**{f: f for f in FEEDBACK_FIELDS}),
                                order_by=(F("created_at").asc(nulls_last=True), "id")))
        .values("rows")
    )
    return Coalesce(Subquery(rows), Value([], output_field=JSONField()))


def feedback_flags(events: list[FeedbackEvent]) -> str:
    """What the review page's "End-user feedback" filter matches a reply by: its events' kinds and ``any``,
    ``negative``, ``low_rating``, ``text``, ``user_correction``, ``implicit``; space-separated."""
    flags = set()
    for event in events:
        low = event.kind == FeedbackKind.RATING and event.rating is not None and event.rating <= RATING_NEGATIVE_MAX
        flags.add(event.kind)
        flags.update(name for name, found in (
            ("any", True), ("negative", event.is_negative or event.kind in NEGATIVE_KINDS or low),
            ("low_rating", low), ("text", bool(event.text)), ("user_correction", bool(event.correction)),
            ("implicit", event.kind in IMPLICIT_KINDS),
        ) if found)
    return " ".join(sorted(flags))


def feedback_from_rows(rows: list[dict]) -> list[FeedbackEvent]:
    """The events of a ``feedback_rows()`` array as model instances (unsaved copies: only shown)."""
    return [
        FeedbackEvent(**{**row, "categories": row["categories"] or [], "created_at": _when(row["created_at"])})
        for row in rows
    ]


def review_data(conversation_id: int, viewer=None, blind: set[int] | frozenset[int] = frozenset()) -> ReviewData:  # noqa: ANN001
    """Everything the review page shows, in 5 queries: conversation, tags, turns with corrections, annotation rows
    with author names, and rubric scores. Cards are rendered (or taken from the cache) by the view; the full
    annotations are read only for cards not cached (``annotations_full``).

    On the ``blind`` turns (``annotations.visibility.blind_turns``) ``viewer`` gets only their own annotations and
    scores, and no corrected reply."""
    conversation = get_object_or_404(Conversation, pk=conversation_id)
    viewer_id = getattr(viewer, "pk", None)
    taxonomy = all_tags()
    # What the page needs of every turn; the rest of a turn (context, timings) only where its rendered html is not
    # cached (``turns_full``).
    turns = list(
        Turn.objects.filter(conversation=conversation)
        .defer(*TURN_RENDER_ONLY_FIELDS)
        .select_related("correction", "correction__approved_by", "correction__updated_by")
        .order_by("position")
    )
    annotations = _rows(Annotation.objects.filter(conversation=conversation))
    stamp = _stamp(annotations, [t.correction for t in turns if _has_correction(t)])
    by_turn: dict[int, list[AnnotationRow]] = defaultdict(list)
    orphans: list[AnnotationRow] = []
    authors: dict[int, str] = {}
    hashes_by_turn: dict[int, set[str]] = defaultdict(set)
    for annotation in annotations:
        hashes_by_turn[annotation.turn_id].add(annotation.text_hash)
        if annotation.deleted or hidden_from(viewer_id, blind, annotation.turn_id, annotation.author_id):
            continue
        authors[annotation.author_id] = annotation.author_name
        if annotation.anchor_state == AnchorState.ORPHANED:
            orphans.append(annotation)
        else:
            by_turn[annotation.turn_id].append(annotation)
    views = []
    stale_turns = []
    scores = scores_by_turn(conversation_id, viewer_id, blind)
    for turn in turns:
        hidden = turn.pk in blind
        view = TurnView(turn=turn, correction=turn.correction if _has_correction(turn) and not hidden else None,
                        scores=scores.get(turn.pk, []), blind=hidden)
        if turn.role == TurnRole.ASSISTANT:
            view.text_hash = anchoring.text_hash(turn.content)
            # Whole-reply feedback first, then spans in reading order.
            view.annotations = sorted(
                by_turn.get(turn.pk, []), key=lambda a: (a.start is not None, a.start or 0, a.pk)
            )
            if hashes_by_turn.get(turn.pk, {view.text_hash}) - {view.text_hash}:
                stale_turns.append(turn)
        views.append(view)
    return ReviewData(
        conversation=conversation,
        turns=views,
        orphans=orphans,
        tags=active(taxonomy),
        all_tags=taxonomy,
        authors=sorted(authors.items(), key=lambda kv: kv[1].lower()),
        stamp=stamp,
        stale_turns=stale_turns,
    )


def scores_by_turn(conversation_id: int, viewer_id: int | None, blind: set[int] | frozenset[int] = frozenset(),
                   ) -> dict[int, list[Score]]:
    """The rubric scores of a conversation's replies, gold first, then by field and author; on ``blind`` turns only
    the viewer's own. One query."""
    found: dict[int, list[Score]] = defaultdict(list)
    rows = Score.objects.filter(conversation_id=conversation_id).select_related("config", "author")
    for score in sorted(rows, key=lambda s: (s.turn_id, not s.is_gold, s.config.key, s.author.get_username())):
        if hidden_from(viewer_id, blind, score.turn_id, score.author_id):
            continue
        found[score.turn_id].append(score)
    return found


def _has_correction(turn: Turn) -> bool:
    try:
        return turn.correction is not None
    except Correction.DoesNotExist:
        return False


def _stamp(annotations, corrections) -> str:
    times = [a.updated_at for a in annotations] + [c.updated_at for c in corrections]
    # With nothing yet, "now": anything created after the page was read is newer.
    return max(times).isoformat() if times else timezone.now().isoformat()


@dataclass
class Changes:
    annotations: list[AnnotationRow]
    corrections: list[Correction]
    stamp: str


def changes_since(conversation_id: int, since: dt.datetime | None) -> Changes | None:
    """Annotations and corrections of a conversation changed after ``since`` (minus a small overlap), or ``None``
    when nothing changed. One indexed query when nothing changed."""
    if since is None:
        return None
    window = since - POLL_OVERLAP
    changed_q = Q(conversation_id=conversation_id, updated_at__gt=window)
    annotations = _rows(Annotation.objects.filter(changed_q))
    corrections = list(
        Correction.objects.filter(changed_q).select_related("approved_by", "updated_by", "turn")
    )
    if not annotations and not corrections:
        return None
    latest = max([a.updated_at for a in annotations] + [c.updated_at for c in corrections])
    return Changes(annotations=annotations, corrections=corrections, stamp=max(latest, since).isoformat())


def visible_changes(changes: Changes, viewer_id: int | None, blind: set[int]) -> Changes | None:
    """``changes`` without others' work on the ``blind`` turns (``annotations.visibility``), or ``None`` when nothing
    the viewer may see is left."""
    if not blind:
        return changes
    annotations = [a for a in changes.annotations if not hidden_from(viewer_id, blind, a.turn_id, a.author_id)]
    corrections = [c for c in changes.corrections if c.turn_id not in blind]
    if not annotations and not corrections:
        return None
    return Changes(annotations=annotations, corrections=corrections, stamp=changes.stamp)


def hidden_from(viewer_id: int | None, blind: set[int] | frozenset[int], turn_id: int, author_id: int) -> bool:
    """Whether work by ``author_id`` on ``turn_id`` is hidden from the viewer: another's, on a blind turn."""
    return turn_id in blind and author_id != viewer_id


def annotation_for_card(annotation_id: int, tags: list[Tag]) -> Annotation:
    return with_tag_lists([get_object_or_404(annotation_queryset(), pk=annotation_id)], tags)[0]


#: What the history shows instead of a deleted annotation's or reply's text to those who may not read it.
DELETED_TEXT = "deleted"
#: The fields of an audit state that hold what its author wrote (``exact`` quotes the reply, not the author).
TEXT_FIELDS = ("body", "replacement")


def annotation_history(annotation_id: int, viewer) -> list[AuditEvent]:  # noqa: ANN001 (a user or AnonymousUser)
    """The audit trail of an annotation: its own events and its replies', oldest first. The text of a deleted
    annotation or reply is shown only to its author and admins; others read "deleted" in its place."""
    events = list(AuditEvent.objects.filter(annotation_id=annotation_id).select_related("actor").order_by("at", "id"))
    annotation = Annotation.objects.only("author_id", "deleted_at").get(pk=annotation_id)
    hidden: set[tuple[str, int]] = set()
    if annotation.deleted_at is not None and not permissions.can_read_deleted(viewer, annotation):
        hidden.add(("annotation", annotation.pk))
    replies = AnnotationReply.objects.filter(annotation_id=annotation_id).only("author_id", "deleted_at")
    for reply in replies:
        deleted = reply.deleted_at is not None or annotation.deleted_at is not None
        if deleted and not permissions.can_read_deleted(viewer, reply):
            hidden.add(("annotationreply", reply.pk))
    for event in events:
        if (event.object_type, event.object_id) in hidden:
            event.before, event.after = _redacted(event.before), _redacted(event.after)
    return events


def _redacted(state: dict | None) -> dict | None:
    if not state:
        return state
    return {key: DELETED_TEXT if key in TEXT_FIELDS and value else value for key, value in state.items()}


def correction_history(correction_id: int) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(correction_id=correction_id).select_related("actor").order_by("at", "id"))


#: ``<field key><op><value>``: helpfulness<=2, tone=rude, accurate=yes.
SCORE_FILTER = re.compile(r"^\s*([a-z0-9_-]+)\s*(<=|>=|=|<|>)\s*(.+?)\s*$")


def score_filter_condition(value: str) -> tuple[str, list]:
    """The conversation list's "Rubric score" filter as an SQL condition on the list's conversation ``c``: some
    reply has a score of the field (any version, gold or not) that compares as asked. ValueError when the value
    cannot be read; numbers compare with any operator, yes/no and options only with ``=``."""
    found = SCORE_FILTER.match(value)
    if not found:
        raise ValueError("Write a field key, a comparison and a value, e.g. helpfulness<=2 or tone=rude.")
    key, op, wanted = found.groups()
    try:
        number: float | None = float(wanted)
    except ValueError:
        number = {"yes": 1.0, "no": 0.0}.get(wanted.lower())
        if op != "=":
            raise ValueError(f"{wanted!r} is not a number: compare it with = only.") from None
    score = connection.ops.quote_name(Score._meta.db_table)
    config = connection.ops.quote_name(ScoreConfig._meta.db_table)
    test, param = (f"s.value {op} %s", number) if number is not None else ("s.option = %s", wanted)
    return (
        f"EXISTS (SELECT 1 FROM {score} s JOIN {config} k ON k.id = s.config_id "  # noqa: S608
        f"WHERE s.conversation_id = c.id AND k.key = %s AND {test})",
        [key, param],
    )
