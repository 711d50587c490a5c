"""Set-based SQL of review queues: adding the replies a source matches to a queue in one statement.

Table names come from the models; every value from a request is a query parameter."""

# ruff: noqa: S608

from __future__ import annotations

from typing import Any

from django.db import connection

from annotations.queues.models import QueueItem
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
