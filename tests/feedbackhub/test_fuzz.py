"""No input breaks a request: hostile values at every parameter of every URL, and at every recall API field.

The URLs come from the resolver (every pattern but the admin's, Django's own), their path converters filled with ids
of a small demo data set. The parameters a view reads are found by asking it: each URL is requested once per role
and method while the reads of ``request.GET``/``request.POST`` are recorded, then again with those parameters set,
which finds the ones read only when another is present. Then every parameter gets every hostile value (as admin,
who sees every page), and hypothesis mixes hostile values over several parameters for each role. A 500 fails the
test with the request that caused it.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from urllib.parse import quote

import pytest
from django.contrib.auth.models import Group, User
from django.db import transaction
from django.http import QueryDict
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver
from django.utils.datastructures import MultiValueDict
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from annotations.curation.models import Dataset, Example, ExportJob
from annotations.models import Annotation, AnnotationReply, Correction
from annotations.triage.models import Cluster, ClusterProposal
from feedbackhub import auth_tokens, roles
from feedbackhub.demo import seeding
from feedbackhub.models import ApiScope
from sessions.models import Conversation, ImportBatch, SavedView, Turn, TurnRole

pytestmark = pytest.mark.django_db

DEEP_JSON = "[" * 3000 + "]" * 3000
HOSTILE = [
    "\x00",
    "a\x00b",
    "¹²",
    "١٢٣",  # Arabic-Indic digits
    "9223372036854775808",  # bigint + 1
    "99999999999999999999999999",
    "-9223372036854775809",
    "-1",
    "0",
    "1.5",
    "1e400",
    "NaN",
    "",
    " ",
    "0001-01-01",
    "9999-12-31",
    "0000-00-00",
    "2026-02-30",
    "0001-01-01T00:00:00+23:59",
    "9999-12-31T23:59:59-23:59",
    "2026-01-01T00:00:00+99:00",
    "\ud800",  # a lone surrogate: sent as its (invalid) UTF-8 bytes
    "x" * 20_000,
    "<script>alert(1)</script>",
    '" hx-get="/admin/" hx-trigger="load',
    DEEP_JSON,
    "[]",
    "{}",
    "../../../etc/passwd",
    "%",
    "true",
]
#: The values that broke requests before, tried in each parameter on its own.
SHARP = ["a\x00b", "¹²", "9223372036854775808", "0001-01-01", "9999-12-31", "2026-01-01T00:00:00+23:59", "\ud800"]
#: URLs not fuzzed here: logging out ends the session the rest of the run needs.
SKIPPED = {"logout/", "api/v1/recall"}  # the API has its own tests below
ROLE_NAMES = ("anonymous", "admin", "moderator", "expert", "analyst")


def encode(pairs: list[tuple[str, str]]) -> str:
    """A query string or form body, lone surrogates sent as the bytes a careless client would send."""
    return "&".join(
        f"{quote(k.encode('utf-8', 'surrogatepass'))}={quote(v.encode('utf-8', 'surrogatepass'))}" for k, v in pairs
    )


def walk(patterns, prefix: str = "") -> Iterator[tuple[str, URLPattern]]:
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            if str(pattern.pattern) == "admin/":
                continue
            yield from walk(pattern.url_patterns, prefix + str(pattern.pattern))
        else:
            yield prefix + str(pattern.pattern), pattern


@dataclass
class Seeded:
    clients: dict[str, Client]
    path_values: dict[str, str]
    token: str
    #: (route, method) -> parameter names the view read.
    params: dict[tuple[str, str], set[str]] = field(default_factory=dict)


def _seed() -> Seeded:
    seeding.demo_seed(count=30, seed=3)
    users = {
        "admin": User.objects.create_user("fuzz-admin", is_staff=True),
        "moderator": User.objects.create_user("fuzz-moderator"),
        "expert": User.objects.create_user("fuzz-expert"),
        "analyst": User.objects.create_user("fuzz-analyst"),
    }
    for name, role in (
        ("admin", roles.ADMIN),
        ("moderator", roles.MODERATOR),
        ("expert", roles.DOMAIN_EXPERT),
        ("analyst", roles.PRODUCT_ANALYST),
    ):
        users[name].groups.add(Group.objects.get_or_create(name=role)[0])
    # A view's exception is answered with the 500 page (counted), not raised into the test.
    clients = {"anonymous": Client(raise_request_exception=False)}
    for name, user in users.items():
        clients[name] = Client(raise_request_exception=False)
        clients[name].force_login(user)

    annotation = Annotation.objects.order_by("pk").first()
    turn = Turn.objects.filter(role=TurnRole.ASSISTANT, annotations__isnull=False).order_by("pk").first()
    correction = Correction.objects.order_by("pk").first()
    dataset = Dataset.objects.order_by("pk").first()
    view = SavedView.objects.create(
        slug="fuzz-view", name="Fuzz view", owner=users["admin"], shared=True, query_string="environment=production"
    )

    def pk(obj) -> str:
        return str(obj.pk) if obj is not None else "1"

    path_values = {
        "conversation_id": pk(annotation.turn.conversation if annotation else Conversation.objects.first()),
        "turn_id": pk(turn),
        "annotation_id": pk(annotation),
        "reply_id": pk(AnnotationReply.objects.order_by("pk").first()),
        "correction_id": pk(correction),
        "cluster_id": pk(Cluster.objects.order_by("pk").first()),
        "proposal_id": pk(ClusterProposal.objects.order_by("pk").first()),
        "example_id": pk(Example.objects.order_by("pk").first()),
        "chart_id": "feedback-by-kind",
        "conversations/<int:pk>": pk(Conversation.objects.order_by("pk").first()),
        "imports/<int:pk>": pk(ImportBatch.objects.order_by("pk").first()),
        "exports/<int:pk>": pk(ExportJob.objects.order_by("pk").first()),
        "curation/d/<slug:slug>": dataset.slug if dataset else "none",
        "views/<slug:slug>": view.slug,
        "rest": "",
    }
    token = recall_token()
    return Seeded(clients=clients, path_values=path_values, token=token)


def concrete(route: str, values: dict[str, str]) -> str:
    """The route with its converters replaced by real ids."""

    def value(match: re.Match) -> str:
        name = match.group("name")
        for key, found in values.items():
            if "/" in key and route.find(key.rsplit("/", 1)[0]) != -1 and key.endswith(match.group(0)):
                return found
        return values.get(name, "1")

    path = re.sub(r"<(?:\w+:)?(?P<name>\w+)>", value, route)
    path = re.sub(r"\^|\$|\(\?P<(?P<name>\w+)>[^)]*\)", lambda m: values.get(m.group("name") or "", ""), path)
    return "/" + path


class ReadRecorder:
    """Records which keys views read from request.GET/POST (QueryDicts; URL reversing reads other MultiValueDicts),
    while on."""

    def __init__(self, monkeypatch) -> None:
        self.keys: set[str] = set()
        self.on = False
        recorder = self
        for method in ("get", "getlist", "__getitem__", "__contains__"):
            original = getattr(MultiValueDict, method)

            def wrapped(self, key, *args, _original=original, **kwargs):
                if recorder.on and isinstance(self, QueryDict) and isinstance(key, str):
                    recorder.keys.add(key)
                return _original(self, key, *args, **kwargs)

            monkeypatch.setattr(MultiValueDict, method, wrapped)

    def reads(self, client: Client, method: str, path: str, pairs: list[tuple[str, str]]) -> set[str]:
        """The parameters the view read while answering this request (which must not be a 500)."""
        self.keys, self.on = set(), True
        try:
            check(request(client, method, path, pairs), f"{method} {path} {pairs!r:.200}")
        finally:
            self.on = False
        return self.keys - {"csrfmiddlewaretoken"}


def request(client: Client, method: str, path: str, pairs: list[tuple[str, str]], *, htmx: bool = False):
    """One request in a savepoint of the test's transaction: a database error in one request (a 500, reported)
    would otherwise abort the transaction and fail every request after it."""
    headers = {"HX-Request": "true"} if htmx else {}
    savepoint = transaction.savepoint()
    if method == "GET":
        response = client.generic("GET", path, QUERY_STRING=encode(pairs), headers=headers)
    else:
        response = client.generic(
            "POST", path, encode(pairs), content_type="application/x-www-form-urlencoded", headers=headers
        )
    if response.status_code == 500:
        transaction.savepoint_rollback(savepoint)
    else:
        transaction.savepoint_commit(savepoint)
    return response


#: The requests that answered 500, collected so one run reports them all.
FAILURES: list[str] = []
SENT = [0]


def check(response, what: str) -> None:
    SENT[0] += 1
    if response.status_code == 500:
        FAILURES.append(what)


def discover(seeded: Seeded, recorder: ReadRecorder, routes: list[str]) -> None:
    """The parameters each view reads, asked as admin (every view's parsing is reachable for admin) and, for the
    pages anyone may open (the login page), anonymously."""
    for route in routes:
        path = concrete(route, seeded.path_values)
        for method in ("GET", "POST"):
            found: set[str] = set()
            for role in ("admin", "anonymous"):
                client = seeded.clients[role]
                first = recorder.reads(client, method, path, [])
                if role == "anonymous" and not first:
                    continue
                found |= first | recorder.reads(client, method, path, [(key, "1") for key in first])
            seeded.params[(route, method)] = found


def test_no_parameter_of_any_url_gives_a_500(monkeypatch):
    seeded = _seed()
    recorder = ReadRecorder(monkeypatch)
    routes = [route for route, _ in walk(get_resolver().url_patterns) if route not in SKIPPED]
    FAILURES.clear()
    discover(seeded, recorder, routes)
    parametrised = {key: names for key, names in seeded.params.items() if names}
    assert len(parametrised) >= 20, sorted(parametrised)  # the discovery found the filters, forms and fragments

    # Every hostile value in every parameter at once, then the sharpest ones in each parameter alone (a view that
    # parses by hand stops at its first bad parameter), as admin (who reaches every view's parsing).
    admin = seeded.clients["admin"]
    for (route, method), names in sorted(parametrised.items()):
        path = concrete(route, seeded.path_values)
        started = time.monotonic()
        if os.environ.get("FUZZ_TIMES"):
            print(f"{method} {route} {sorted(names)}", end=" ", flush=True)
        for value in HOSTILE:
            response = request(admin, method, path, [(name, value) for name in sorted(names)])
            check(response, f"{method} {path} {sorted(names)}={value[:40]!r}")
        for name in sorted(names):
            for value in SHARP:
                response = request(admin, method, path, [(name, value)])
                check(response, f"{method} {path} {name}={value[:40]!r}")
        if os.environ.get("FUZZ_TIMES"):
            print(f"{time.monotonic() - started:.1f}s", flush=True)

    # Hostile values mixed over several parameters, for each role.
    value_strategy = st.one_of(st.sampled_from(HOSTILE), st.text(max_size=30), st.integers().map(str))

    @settings(
        max_examples=4,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(data=st.data())
    def mixed(route: str, method: str, names: list[str], data) -> None:
        role = data.draw(st.sampled_from(ROLE_NAMES))
        pairs = data.draw(st.lists(st.tuples(st.sampled_from(names), value_strategy), min_size=1, max_size=5))
        path = concrete(route, seeded.path_values)
        response = request(seeded.clients[role], method, path, pairs, htmx=data.draw(st.booleans()))
        check(response, f"{role} {method} {path} {pairs!r:.300}")

    for (route, method), names in sorted(parametrised.items()):
        mixed(route, method, sorted(names))
    print(f"{len(parametrised)} URL/method pairs with parameters, {SENT[0]} hostile requests")
    assert not FAILURES, "\n".join(sorted(set(FAILURES)))


def recall_token() -> str:
    """A recall token that sees every source: parsing is what is fuzzed, not the scope."""
    return auth_tokens.api_token_create(name="fuzz", scopes=[ApiScope.RECALL], all_sources=True)[1]


# --- The recall API -------------------------------------------------------------------------------------------------

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.sampled_from(HOSTILE) | st.text(max_size=30),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3),
    max_leaves=6,
)
FILTER_FIELDS = ("environment", "model_version", "user_role", "tags", "since", "until")


def _api(client: Client, token: str, body: bytes):
    return client.generic(
        "POST", "/api/v1/recall", body, content_type="application/json", headers={"Authorization": f"Bearer {token}"}
    )


def test_no_recall_api_field_gives_a_500():
    token = recall_token()
    client = Client()

    # Every field, every hostile value; the filters one by one.
    for value in [*HOSTILE, 2**70, -(2**70), 1e308, None, True, [], {}, ["\x00"], [2**70], {"a": DEEP_JSON}]:
        for body in (
            {"input": value},
            {"input": "refund", "k": value},
            {"input": "refund", "filters": value},
            *({"input": "refund", "filters": {name: value}} for name in FILTER_FIELDS),
            *({"input": "refund", "filters": {name: [value]}} for name in ("tags",)),
        ):
            response = _api(client, token, json.dumps(body).encode())
            assert response.status_code != 500, f"500 for {body!r:.200}"
            if response.status_code == 400:
                assert response["Content-Type"].startswith("application/json")

    raw_bodies = {
        "deep nesting": ('{"input": ' + DEEP_JSON + "}").encode(),
        "lone surrogate": b'{"input": "refund \\ud800"}',
        "lone surrogate in a filter": b'{"input": "refund", "filters": {"environment": "\\udfff"}}',
        "invalid utf-8": b'{"input": "\xff\xfe"}',
        "NUL in a filter": b'{"input": "refund", "filters": {"model_version": "a\\u0000b"}}',
        "not an object": b"[1, 2]",
        "empty": b"",
    }
    for what, body in raw_bodies.items():
        response = _api(client, token, body)
        assert response.status_code in (200, 400), f"{response.status_code} for {what}"
        assert response["Content-Type"].startswith("application/json"), what


def test_an_oversize_api_body_is_a_json_413():
    token = recall_token()
    body = json.dumps({"input": "x" * (11 * 1024 * 1024)}).encode()
    response = _api(Client(), token, body)
    assert response.status_code == 413
    assert response["Content-Type"].startswith("application/json")
    assert response.json()["error"]


@settings(
    max_examples=60,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    body=st.fixed_dictionaries(
        {},
        optional={
            "input": JSON_VALUES,
            "k": JSON_VALUES,
            "filters": st.fixed_dictionaries({}, optional=dict.fromkeys(FILTER_FIELDS, JSON_VALUES)) | JSON_VALUES,
            "other": JSON_VALUES,
        },
    )
)
def test_recall_api_bodies_never_give_a_500(body):
    token = recall_token()
    response = _api(Client(), token, json.dumps(body).encode())
    assert response.status_code in (200, 400), f"{response.status_code} for {body!r:.300}"
