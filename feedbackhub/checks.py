"""Startup checks against the database: pgvector present and recent enough.

Registered with Django's system check framework under the ``database`` tag, so they run in ``migrate``,
``check --database default`` and before ``manage.py serve`` hands over to gunicorn: a server pointed at a
PostgreSQL without pgvector (or with one too old for halfvec HNSW indexes) refuses to start with a message that says
what to install, rather than failing on the first recall request.
"""

from __future__ import annotations

from django.core.checks import Error, Tags, register
from django.db import connections
from django.db.utils import Error as DatabaseError

#: halfvec and HNSW over halfvec (annotations/recall migrations) arrived in pgvector 0.7.0.
MIN_PGVECTOR = (0, 7, 0)


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split(".") if part.isdigit())


def pgvector_problem(alias: str = "default") -> str | None:
    """Why the database cannot serve FeedbackHub's vectors, or None. Reads the installed extension, else the one
    the server offers (before the first ``migrate`` creates it)."""
    with connections[alias].cursor() as cur:
        cur.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'")
        row = cur.fetchone()
        installed = row[0] if row else None
        if installed is None:
            cur.execute("SELECT default_version FROM pg_available_extensions WHERE name = 'vector'")
            row = cur.fetchone()
            if row is None:
                return ("the PostgreSQL server has no pgvector extension: install pgvector "
                        f"{'.'.join(map(str, MIN_PGVECTOR))} or newer on it (e.g. the postgresql-NN-pgvector package)")
            installed = row[0]
    if _version(installed) < MIN_PGVECTOR:
        return (f"pgvector {installed} is too old: FeedbackHub needs {'.'.join(map(str, MIN_PGVECTOR))} or newer "
                "(halfvec HNSW indexes); upgrade it, then `ALTER EXTENSION vector UPDATE`")
    return None


@register(Tags.database)
def check_pgvector(app_configs=None, databases=None, **kwargs) -> list[Error]:
    errors: list[Error] = []
    for alias in databases or []:
        try:
            problem = pgvector_problem(alias)
        except DatabaseError as exc:
            problem = f"could not ask the database about pgvector: {exc}"
        if problem:
            errors.append(Error(f"Database {alias!r}: {problem}.", id="feedbackhub.E001"))
    return errors
