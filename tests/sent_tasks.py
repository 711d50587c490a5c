"""What a block of code sent to Celery on commit, read from ``django_capture_on_commit_callbacks``.

Tasks go through ``feedbackhub.outbox`` (``enqueue_on_commit`` / ``enqueue_once_on_commit``), whose on-commit
callbacks are partials of ``outbox.send`` / ``outbox._send_once`` holding the task and its arguments.
"""

from __future__ import annotations

import functools
from typing import Any

from feedbackhub import outbox


def sent_tasks(callbacks) -> list[tuple[str, tuple[Any, ...], dict[str, Any]]]:  # noqa: ANN001
    """``(task name, args, kwargs)`` for each task the callbacks send, in order."""
    sent = []
    for cb in callbacks:
        if not isinstance(cb, functools.partial):
            continue
        if cb.func is outbox.send:
            task, args, kwargs = cb.args
            sent.append((task.name, tuple(args), dict(kwargs or {})))
        elif cb.func is outbox._send_once:
            task, kwargs = cb.args
            sent.append((task.name, (), dict(kwargs)))
    return sent
