"""Shared fixtures. Tests run on the real PostgreSQL+pgvector and Redis (embedded unless *_URL is set)."""

from __future__ import annotations

import pytest
import redis
from django.conf import settings
from django.contrib.auth.models import Group, User

from feedbackhub import roles


def pytest_collection_modifyitems(items) -> None:
    # A transactional test ends with a flush that empties every table, rows made by data migrations included
    # (the role groups, the tag taxonomy), and later tests then miss them. Serialized rollback puts them back;
    # one transactional test without it also breaks the ones with it (its flush re-creates content types that
    # their restore then inserts again), so every transactional test gets it.
    for item in items:
        marker = item.get_closest_marker("django_db")
        if marker and marker.kwargs.get("transaction") and "serialized_rollback" not in marker.kwargs:
            serialized = pytest.mark.django_db(*marker.args, **marker.kwargs, serialized_rollback=True)
            item.add_marker(serialized, append=False)


@pytest.fixture(scope="session", autouse=True)
def _own_redis_database() -> None:
    """Start from an empty Redis database of the suite's own (tests/settings.py): no cache entry, queued task or
    coalescing mark of an earlier, interrupted run, and nothing of a running instance's."""
    assert settings.REDIS_URL != settings.APP_REDIS_URL
    redis.Redis.from_url(settings.REDIS_URL).flushdb()


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    # PBKDF2 is slow on purpose: over a second per test user on a busy machine. Tests need no such strength.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def _user(username: str, *role_names: str) -> User:
    user = User.objects.create_user(username=username, password="pw-for-tests-only")
    for name in role_names:
        # get_or_create: a transactional test's flush removes the groups the data migration created.
        user.groups.add(Group.objects.get_or_create(name=name)[0])
    return user


@pytest.fixture
def moderator(db) -> User:
    return _user("mod", roles.MODERATOR)


@pytest.fixture
def expert(db) -> User:
    return _user("expert", roles.DOMAIN_EXPERT)


@pytest.fixture
def second_expert(db) -> User:
    """Another domain expert: under four-eyes the approver of a correction must not be its author."""
    return _user("expert2", roles.DOMAIN_EXPERT)


@pytest.fixture
def analyst(db) -> User:
    return _user("analyst", roles.PRODUCT_ANALYST)


@pytest.fixture
def moderator_client(client, moderator):
    client.force_login(moderator)
    return client


@pytest.fixture
def tasks_run_here():
    """Celery tasks sent during the test run in the test's own process, at once (Celery's eager mode), instead of
    waiting in Redis for a worker: for unit tests of what a task does after a commit. Tests of the real path
    (a worker process taking tasks from Redis) are in tests/integration."""
    from feedbackhub.celery import app

    saved = app.conf.task_always_eager, app.conf.task_eager_propagates
    app.conf.task_always_eager = app.conf.task_eager_propagates = True
    yield
    app.conf.task_always_eager, app.conf.task_eager_propagates = saved
