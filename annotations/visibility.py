"""Who sees whose reviewer work on a reply. The review workspace asks every registered rule; a feature app adds a
rule from its ``AppConfig.ready()`` (review queues make reviewers blind to each other until they have completed an
item). This app never imports those apps.

A rule is ``rule(viewer, conversation_ids) -> set of turn ids`` (of those conversations) on which ``viewer`` sees
only their own annotations and scores.
"""

from __future__ import annotations

from collections.abc import Callable, Collection

BlindRule = Callable[[object, Collection[int]], set[int]]

_RULES: list[BlindRule] = []


def register(rule: BlindRule) -> None:
    if rule not in _RULES:
        _RULES.append(rule)


def blind_turns(viewer, conversation_id: int) -> set[int]:  # noqa: ANN001 (a user or AnonymousUser)
    """The turns of a conversation on which ``viewer`` sees only their own work."""
    return blind_turns_among(viewer, [conversation_id])


def blind_turns_among(viewer, conversation_ids: Collection[int]) -> set[int]:  # noqa: ANN001
    """The turns of any of these conversations on which ``viewer`` sees only their own work (one query per rule)."""
    if not getattr(viewer, "is_authenticated", False) or not conversation_ids:
        return set()
    turns: set[int] = set()
    for rule in _RULES:
        turns |= rule(viewer, conversation_ids)
    return turns


def hides(viewer, turn_id: int, conversation_id: int, author_id: int) -> bool:  # noqa: ANN001
    """Whether ``viewer`` may not see work by ``author_id`` on ``turn_id``."""
    return author_id != getattr(viewer, "pk", None) and turn_id in blind_turns(viewer, conversation_id)
