"""The values offered in the conversation list's filter drop-downs: one SQL query."""

# The SQL is assembled from constants of this module (column names, CTE names, numbers); every value that comes
# from a request is passed as a query parameter.
# ruff: noqa: S608

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from django.db import connection

from sessions.models import Conversation

#: At most this many values per filter drop-down; a value beyond it can still be filtered on through the URL.
MAX_CHOICES = 500


@dataclass(frozen=True)
class FilterChoices:
    model_versions: list[str] = field(default_factory=list)
    user_roles: list[str] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)


# A loose index scan per column: each step jumps to the next distinct value through the column's
# (value, -started_at, -id) index, so the cost grows with the number of distinct values, not of rows.
_DISTINCT_STEP = """
{name} AS (
    (SELECT {col} AS v FROM {table} WHERE {col} > '' ORDER BY {col} LIMIT 1)
    UNION ALL
    SELECT (SELECT c.{col} FROM {table} c WHERE c.{col} > {name}.v ORDER BY c.{col} LIMIT 1)
    FROM {name} WHERE {name}.v IS NOT NULL
)"""
_CHOICE_COLUMNS = {"model_versions": "model_version", "user_roles": "user_role", "sources": "source"}


def _choices_sql() -> str:
    table = connection.ops.quote_name(Conversation._meta.db_table)
    ctes = ",".join(
        _DISTINCT_STEP.format(name=name, col=connection.ops.quote_name(col), table=table)
        for name, col in _CHOICE_COLUMNS.items()
    )
    selects = " UNION ALL ".join(
        f"(SELECT '{name}', v FROM {name} WHERE v IS NOT NULL LIMIT {MAX_CHOICES})" for name in _CHOICE_COLUMNS
    )
    return f"WITH RECURSIVE {ctes} {selects}"


def conversation_filter_choices() -> FilterChoices:
    """The distinct model versions, user roles and sources present, each sorted; one query."""
    found: dict[str, list[str]] = defaultdict(list)
    with connection.cursor() as cursor:
        cursor.execute(_choices_sql())
        for name, value in cursor.fetchall():
            found[name].append(value)
    return FilterChoices(**{name: found[name] for name in _CHOICE_COLUMNS})
