"""SQL of review queues, in one place:

- adding the replies a source matches to a queue: one set-based statement;
- the three reads of opening the next item (the item to hold, the blind rule, the reviewer's progress), each one
  statement. The ORM builds the same queries (Exists and Subquery) but compiling them cost about 10 ms of the
  request, and "Next item p95" in docs/benchmarks.md (target 60 ms) measured 89 ms with them.

Table names come from the models; every value from a request is a query parameter."""

# ruff: noqa: S608

from __future__ import annotations

from typing import Any

from django.db import connection

from annotations.queues.models import QueueItem, Review, ReviewQueue, ReviewState
from sessions.models import Conversation, Turn, TurnRole


def _table(model) -> str:  # noqa: ANN001
    return connection.ops.quote_name(model._meta.db_table)


def conversation_replies_sql(match_sql: str, params: list[Any], *, last_only: bool) -> tuple[str, list[Any]]:
    """``turn_id, conversation_id, ord`` of the assistant replies of the conversations ``match_sql`` selects, newest
    conversation first and in reading order within one; ``last_only``: the last reply of each."""
    turn, conv = _table(Turn), _table(Conversation)
    if last_only:
        replies = (
            f"SELECT DISTINCT ON (t.conversation_id) t.id AS turn_id, t.conversation_id, t.position "
            f"FROM {turn} t WHERE t.role = %s AND t.conversation_id IN ({match_sql}) "
            f"ORDER BY t.conversation_id, t.position DESC"
        )
    else:
        replies = (
            f"SELECT t.id AS turn_id, t.conversation_id, t.position FROM {turn} t "
            f"WHERE t.role = %s AND t.conversation_id IN ({match_sql})"
        )
    sql = (
        f"SELECT r.turn_id, r.conversation_id, "
        f"row_number() OVER (ORDER BY c.started_at DESC NULLS LAST, c.id DESC, r.position) AS ord "
        f"FROM ({replies}) r JOIN {conv} c ON c.id = r.conversation_id"
    )
    return sql, [TurnRole.ASSISTANT, *params]


def source_replies_sql(source_sql: str, params: list[Any]) -> tuple[str, list[Any]]:
    """``turn_id, conversation_id, ord`` of the assistant replies among a reply source's ``turn_id,
    conversation_id`` rows, in reading order."""
    turn = _table(Turn)
    sql = (
        f"SELECT s.turn_id, s.conversation_id, row_number() OVER (ORDER BY s.conversation_id DESC, t.position) AS ord "
        f"FROM ({source_sql}) s JOIN {turn} t ON t.id = s.turn_id WHERE t.role = %s"
    )
    return sql, [*params, TurnRole.ASSISTANT]


def add_items(queue_id: int, replies_sql: str, params: list[Any], *, limit: int) -> int:
    """Add the replies (``turn_id, conversation_id, ord``) not yet in the queue, after its last item, at most
    ``limit`` of them; returns how many were added."""
    item = _table(QueueItem)
    sql = (
        f"INSERT INTO {item} (queue_id, turn_id, conversation_id, position, done_count, added_at) "
        f"SELECT %s, n.turn_id, n.conversation_id, "
        f"  COALESCE((SELECT max(q.position) FROM {item} q WHERE q.queue_id = %s), 0) "
        f"  + row_number() OVER (ORDER BY n.ord), 0, now() "
        f"FROM (SELECT r.turn_id, r.conversation_id, r.ord FROM ({replies_sql}) r "
        f"      WHERE NOT EXISTS (SELECT 1 FROM {item} e WHERE e.queue_id = %s AND e.turn_id = r.turn_id) "
        f"      ORDER BY r.ord LIMIT %s) n "
        f"ON CONFLICT (queue_id, turn_id) DO NOTHING"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [queue_id, queue_id, *params, queue_id, limit])
        return cursor.rowcount


def _available() -> str:
    """``FROM ... WHERE ... ORDER BY`` of the items of a queue a reviewer may take, in queue order: still needing
    reviews, not reviewed or skipped by the reviewer, and not all their open reviews held by others right now."""
    item, review = _table(QueueItem), _table(Review)
    return (
        f"FROM {item} i "
        f"WHERE i.queue_id = %(queue)s AND i.done_count < %(k)s "
        f"  AND NOT EXISTS (SELECT 1 FROM {review} m WHERE m.item_id = i.id AND m.reviewer_id = %(reviewer)s) "
        f"  AND i.done_count + (SELECT count(*) FROM {review} h WHERE h.item_id = i.id AND h.state = %(held)s "
        f"                     AND h.leased_until > %(now)s) < %(k)s "
        f"ORDER BY i.position, i.id"
    )


def _available_params(queue_id: int, reviewer_id: int, reviews_per_item: int, now) -> dict:  # noqa: ANN001
    return {"queue": queue_id, "k": reviews_per_item, "reviewer": reviewer_id, "now": now,
            "held": ReviewState.IN_PROGRESS}


def next_item(queue_id: int, reviewer_id: int, reviews_per_item: int, now) -> tuple | None:  # noqa: ANN001
    """``(id, turn_id, conversation_id, position, done_count, ran_out)`` of the first item in queue order that the
    reviewer has not reviewed or skipped and that needs a review nobody holds now, locked (``FOR UPDATE SKIP
    LOCKED``: two reviewers asking at once get different items); ``ran_out`` when a hold on it has run out."""
    review = _table(Review)
    sql = (
        f"SELECT i.id, i.turn_id, i.conversation_id, i.position, i.done_count, "
        f"  EXISTS (SELECT 1 FROM {review} o WHERE o.item_id = i.id AND o.state = %(held)s "
        f"          AND o.leased_until <= %(now)s) "
        f"{_available()} LIMIT 1 FOR UPDATE OF i SKIP LOCKED"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, _available_params(queue_id, reviewer_id, reviews_per_item, now))
        return cursor.fetchone()


def blind_turns(conversation_ids: list[int], user_id: int, role_names: list[str]) -> set[int]:
    """Replies of the conversations in a queue asking for 2-3 reviews that still needs reviews, where the user is a
    reviewer (named, or through a role) who has not completed the item."""
    item, queue, review = _table(QueueItem), _table(ReviewQueue), _table(Review)
    named = _table(ReviewQueue.reviewers.through)
    sql = (
        f"SELECT i.turn_id FROM {item} i JOIN {queue} q ON q.id = i.queue_id "
        f"WHERE i.conversation_id = ANY(%(conversations)s) AND q.reviews_per_item >= 2 AND NOT q.is_archived "
        f"  AND i.done_count < q.reviews_per_item "
        f"  AND (EXISTS (SELECT 1 FROM {named} n WHERE n.reviewqueue_id = q.id AND n.user_id = %(user)s) "
        f"       OR (q.reviewer_role <> '' AND q.reviewer_role = ANY(%(roles)s))) "
        f"  AND NOT EXISTS (SELECT 1 FROM {review} r WHERE r.item_id = i.id AND r.reviewer_id = %(user)s "
        f"                  AND r.state = %(done)s)"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, {"conversations": conversation_ids, "user": user_id, "roles": role_names,
                             "done": ReviewState.DONE})
        return {row[0] for row in cursor.fetchall()}


def reviewer_progress(queue_id: int, reviewer_id: int, reviews_per_item: int) -> tuple[int, int, int]:
    """``(items still needing reviews, reviews the reviewer completed, items needing reviews that the reviewer
    completed or skipped)``."""
    item, review = _table(QueueItem), _table(Review)
    sql = (
        f"SELECT (SELECT count(*) FROM {item} WHERE queue_id = %(queue)s AND done_count < %(k)s), "
        f"  count(*) FILTER (WHERE r.state = %(done)s), "
        f"  count(*) FILTER (WHERE r.state <> %(held)s AND i.done_count < %(k)s) "
        f"FROM {review} r JOIN {item} i ON i.id = r.item_id "
        f"WHERE r.queue_id = %(queue)s AND r.reviewer_id = %(reviewer)s"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, {"queue": queue_id, "k": reviews_per_item, "reviewer": reviewer_id,
                             "done": ReviewState.DONE, "held": ReviewState.IN_PROGRESS})
        open_items, done, closed = cursor.fetchone()
    return int(open_items), int(done), int(closed)


def upcoming_conversations(queue_id: int, reviewer_id: int, reviews_per_item: int, now, limit: int) -> list[int]:  # noqa: ANN001
    """The conversations of the items the reviewer would get next after the one they hold (``next_item`` without
    the lock), in queue order."""
    sql = f"SELECT i.conversation_id {_available()} LIMIT %(limit)s"
    with connection.cursor() as cursor:
        cursor.execute(sql, {**_available_params(queue_id, reviewer_id, reviews_per_item, now), "limit": limit})
        return [row[0] for row in cursor.fetchall()]


def lock_reviewer(queue_id: int, reviewer_id: int) -> None:
    """Serialise one reviewer's "next item" requests in one queue for the rest of the transaction, so a double click
    cannot take two holds (the second request finds the first one's hold and resumes it)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))",
                       [f"queues:next:{queue_id}:{reviewer_id}"])
