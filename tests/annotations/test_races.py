"""Two first writes of a turn's correction at once: one wins, the other gets a conflict (409), never a 500; and the
same for the first use of a new conversation tag name.

Each round runs two requests on two threads (so two database connections) released together by a barrier. Both
requests find no correction and both try to create it; the database decides. The rounds are repeated because how
the two interleave is up to the scheduler: with the old get-then-create, most rounds ended in an IntegrityError.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest
from django.db import connection
from django.test import Client
from django.urls import reverse

from annotations import services
from annotations.models import AuditEvent, Correction, SuggestionState
from feedbackhub import roles
from sessions.tagging import services as tagging
from tests.annotations.conftest import REPLY, make_conversation, span
from tests.conftest import _user

pytestmark = pytest.mark.django_db(transaction=True)

ROUNDS = 20


def _at_once(*calls: Callable[[], int]) -> list[int | BaseException]:
    """Run ``calls`` on threads of their own, released together; their status codes (or what they raised)."""
    barrier = threading.Barrier(len(calls))
    results: list[int | BaseException] = [0] * len(calls)

    def run(i: int, call: Callable[[], int]) -> None:
        try:
            barrier.wait(timeout=30)
            results[i] = call()
        except BaseException as exc:  # reported by the test, with the round
            results[i] = exc
        finally:
            connection.close()  # this thread's own connection

    threads = [threading.Thread(target=run, args=(i, call)) for i, call in enumerate(calls)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not any(t.is_alive() for t in threads), "a request never finished"
    return results


@pytest.fixture
def experts(db) -> tuple[Client, Client]:
    clients = []
    for name in ("expert-a", "expert-b"):
        c = Client(raise_request_exception=True)
        c.force_login(_user(name, roles.DOMAIN_EXPERT))
        clients.append(c)
    return clients[0], clients[1]


def _save(client: Client, turn_id: int, text: str) -> Callable[[], int]:
    url = reverse("annotations:correction_save", args=[turn_id])
    return lambda: client.post(url, {"text": text, "rationale": "", "version": ""}, HTTP_HX_REQUEST="true").status_code


def test_two_first_saves_at_once_give_one_correction_and_a_conflict(experts):
    a, b = experts
    for n in range(ROUNDS):
        conversation = make_conversation(replies=[REPLY], external_id=f"race-{n}")
        turn = conversation.turns.get(role="assistant")
        results = _at_once(_save(a, turn.pk, f"Paris ({n}, a)."), _save(b, turn.pk, f"Paris ({n}, b)."))
        assert sorted(results) == [200, 409], f"round {n}: {results}"
        correction = Correction.objects.get(turn=turn)
        # The winner's text, saved once on top of the reply it started from: created, then edited.
        assert correction.text in {f"Paris ({n}, a).", f"Paris ({n}, b)."} and correction.version == 2
        assert AuditEvent.objects.filter(correction=correction, action="create").count() == 1


def test_accepting_a_suggestion_while_another_expert_saves_first(experts):
    a, b = experts
    author = _user("author", roles.MODERATOR)
    for n in range(ROUNDS):
        conversation = make_conversation(replies=[REPLY], external_id=f"race-accept-{n}")
        turn = conversation.turns.get(role="assistant")
        s = services.annotation_create(
            actor=author, turn=turn, kind="suggestion", replacement="Paris", **span(turn, "Berlin")
        )
        decide_url = reverse("annotations:annotation_decide", args=[s.pk])

        def decide(decide_url: str = decide_url) -> int:
            return a.post(decide_url, {"version": 1, "accept": "1"}, HTTP_HX_REQUEST="true").status_code

        # The save keeps the suggested span, so the accept applies whichever goes first; the save conflicts only
        # when the accept created the correction first (its version is then one the saver has not seen).
        results = _at_once(decide, _save(b, turn.pk, f"{REPLY} ({n})"))
        assert results[0] == 200 and results[1] in (200, 409), f"round {n}: {results}"
        correction = Correction.objects.get(turn=turn)
        s.refresh_from_db()
        assert s.suggestion_state == SuggestionState.ACCEPTED
        assert "Paris" in correction.text and "Berlin" not in correction.text
        assert AuditEvent.objects.filter(correction=correction, action="create").count() == 1


def test_two_first_uses_of_a_new_conversation_tag_name_at_once_give_one_tag(db):
    actors = [_user(f"analyst-{i}", roles.PRODUCT_ANALYST) for i in range(2)]
    for n in range(ROUNDS):
        name = f"launch week {n}"
        got: list[int] = []

        def use(actor, name: str = name, got: list[int] = got) -> int:
            got.append(tagging.conversation_tag_get_or_create(actor=actor, name=name).pk)
            return 200

        results = _at_once(*(lambda a=a: use(a) for a in actors))
        assert results == [200, 200], f"round {n}: {results}"
        assert len(set(got)) == 1
