"""API tokens: stored hashed, shown once (admin and command), and checked by ``token_required``."""

from __future__ import annotations

import datetime as dt
import hashlib
import importlib
import io
import json
import re

import pytest
from django.apps import apps as django_apps
from django.contrib.auth.models import User
from django.core.management import call_command
from django.core.management.base import CommandError
from django.http import JsonResponse
from django.test import RequestFactory
from django.utils import timezone

from feedbackhub import auth_tokens
from feedbackhub.models import ApiToken

pytestmark = pytest.mark.django_db


@auth_tokens.token_required("recall")
def _echo(request):
    return JsonResponse({"token": request.api_token.name})


def _json(response) -> dict:
    return json.loads(response.content)


def _call(header: str | None):
    headers = {"HTTP_AUTHORIZATION": header} if header is not None else {}
    return _echo(RequestFactory().post("/api/v1/x", **headers))


def test_create_stores_only_the_hash():
    row, secret = auth_tokens.api_token_create(name="bot", scopes=["recall"], sources=["support-app"])
    assert secret.startswith("fh_") and len(secret) > 40
    row.refresh_from_db()
    assert row.digest == hashlib.sha256(secret.encode()).hexdigest()
    assert row.prefix == secret[: auth_tokens.PREFIX_LENGTH]
    stored = [str(v) for v in ApiToken.objects.values().get().values()]
    assert secret not in stored


def test_create_rejects_unknown_scope_and_blank_name():
    with pytest.raises(Exception, match="scopes"):
        auth_tokens.api_token_create(name="bot", scopes=["admin"])
    with pytest.raises(Exception, match="name"):
        auth_tokens.api_token_create(name="  ", scopes=["recall"], sources=["support-app"])


def test_valid_token_passes_and_records_use():
    row, secret = auth_tokens.api_token_create(name="bot", scopes=["recall"], sources=["support-app"])
    response = _call(f"Bearer {secret}")
    assert response.status_code == 200
    assert _json(response) == {"token": "bot"}
    row.refresh_from_db()
    assert row.last_used_at is not None


@pytest.mark.parametrize("header", [None, "", "Bearer", "Basic dXNlcjpwdw==", "Bearer fh_not-a-real-token"])
def test_missing_or_unknown_token_is_401(header):
    response = _call(header)
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert _json(response)["error"]["code"] in {"missing_token", "invalid_token"}


def test_revoked_and_expired_tokens_are_401():
    revoked, secret_r = auth_tokens.api_token_create(name="old", scopes=["recall"], sources=["support-app"])
    auth_tokens.api_token_revoke(token_id=revoked.pk)
    _, secret_e = auth_tokens.api_token_create(
        name="expired", scopes=["recall"], sources=["support-app"], expires_at=timezone.now() - dt.timedelta(seconds=1)
    )
    for secret, word in ((secret_r, "revoked"), (secret_e, "expired")):
        response = _call(f"Bearer {secret}")
        assert response.status_code == 401
        assert 'error="invalid_token"' in response["WWW-Authenticate"]
        assert word in _json(response)["error"]["message"]


def test_token_without_scope_is_403():
    row, secret = auth_tokens.api_token_create(name="bot", scopes=["recall"], sources=["support-app"])
    ApiToken.objects.filter(pk=row.pk).update(scopes=[])
    response = _call(f"Bearer {secret}")
    assert response.status_code == 403
    assert _json(response)["error"]["code"] == "insufficient_scope"
    assert 'error="insufficient_scope"' in response["WWW-Authenticate"]


def test_command_prints_token_once_and_it_works():
    out, err = io.StringIO(), io.StringIO()
    call_command("create_api_token", "support bot", "--scope", "recall", "--source", "support-app",
                 "--expires-days", "30", stdout=out, stderr=err)
    secret = out.getvalue().strip()
    assert re.fullmatch(r"fh_[A-Za-z0-9_-]{40,}", secret)
    assert secret not in err.getvalue()
    row = ApiToken.objects.get()
    assert row.name == "support bot" and row.scopes == ["recall"]
    assert (row.sources, row.all_sources, row.gate) == (["support-app"], False, "four_eyes")
    assert row.prefix in err.getvalue()
    assert row.expires_at > timezone.now() + dt.timedelta(days=29)
    assert _call(f"Bearer {secret}").status_code == 200


def test_command_rejects_unknown_scope_and_user():
    with pytest.raises(CommandError):
        call_command("create_api_token", "bot", "--scope", "nope", stdout=io.StringIO(), stderr=io.StringIO())
    with pytest.raises(CommandError, match="--user"):
        call_command("create_api_token", "bot", "--scope", "recall", "--source", "app", "--user", "ghost",
                     stdout=io.StringIO(), stderr=io.StringIO())
    assert not ApiToken.objects.exists()


def test_admin_add_shows_the_token_once(client):
    admin = User.objects.create_superuser("root", "root@example.com", "pw-for-tests-only")
    client.force_login(admin)
    response = client.post(
        "/admin/feedbackhub/apitoken/add/",
        {"name": "support bot", "scopes": ["recall"], "sources": "support-app", "gate": "four_eyes", "expires_at": ""},
    )
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    html = response.content.decode()
    match = re.search(r'value="(fh_[A-Za-z0-9_-]+)" data-api-token', html)
    assert match, html
    secret = match.group(1)
    row = ApiToken.objects.get()
    assert row.created_by == admin
    assert row.digest == auth_tokens.token_digest(secret)
    assert _call(f"Bearer {secret}").status_code == 200
    # Neither the list nor the token's own page shows it again.
    listing = client.get("/admin/feedbackhub/apitoken/").content.decode()
    detail = client.get(f"/admin/feedbackhub/apitoken/{row.pk}/change/").content.decode()
    assert row.prefix in listing
    assert secret not in listing and secret not in detail


def test_admin_revoke_action(client):
    admin = User.objects.create_superuser("root", "root@example.com", "pw-for-tests-only")
    client.force_login(admin)
    row, secret = auth_tokens.api_token_create(name="bot", scopes=["recall"], sources=["support-app"])
    client.post("/admin/feedbackhub/apitoken/", {"action": "revoke", "_selected_action": [row.pk]})
    row.refresh_from_db()
    assert row.revoked_at is not None
    assert _call(f"Bearer {secret}").status_code == 401


def _command(*args: str) -> ApiToken:
    call_command("create_api_token", "bot", "--scope", "recall", *args, stdout=io.StringIO(), stderr=io.StringIO())
    return ApiToken.objects.get(name="bot")


def test_command_binds_sources_grants_and_gates():
    row = _command("--source", "bank-app", "--source", " hr-app ", "--source", "bank-app", "--gate", "approved")
    assert (row.sources, row.all_sources, row.gate, row.gate_label) == (["bank-app", "hr-app"], False, "approved",
                                                                        "approved")
    row.delete()
    row = _command("--all-sources", "--gate", "dataset", "--dataset", "refunds@3")
    assert (row.sources, row.all_sources, row.gate_dataset, row.gate_dataset_version) == ([], True, "refunds", 3)
    assert row.gate_label == "dataset:refunds@3"
    row.delete()
    row = _command("--source", "app", "--gate", "dataset", "--dataset", "team@refunds@latest")
    assert (row.gate_dataset, row.gate_dataset_version, row.gate_label) == ("team@refunds", None,
                                                                            "dataset:team@refunds@latest")


@pytest.mark.parametrize(
    ("args", "words"),
    [
        ((), "source"),  # a recall token bound to nothing would see nothing
        (("--source", "app", "--gate", "dataset"), "--dataset"),
        (("--source", "app", "--dataset", "refunds"), "only with --gate dataset"),
        (("--source", "app", "--gate", "dataset", "--dataset", "refunds@x"), "version"),
        (("--source", "app", "--gate", "dataset", "--dataset", "refunds@²"), "version"),
        (("--source", "app", "--gate", "dataset", "--dataset", "@2"), "Name the dataset"),
    ],
)
def test_command_refuses_incomplete_access(args, words):
    with pytest.raises(CommandError, match=re.escape(words)):
        _command(*args)
    assert not ApiToken.objects.exists()


def test_admin_edits_sources_grant_and_gate(client):
    admin = User.objects.create_superuser("root", "root@example.com", "pw-for-tests-only")
    client.force_login(admin)
    row, secret = auth_tokens.api_token_create(name="bot", scopes=["recall"], sources=["support-app"])
    url = f"/admin/feedbackhub/apitoken/{row.pk}/change/"
    form = {"name": "bot", "scopes": ["recall"], "sources": "", "gate": "dataset", "gate_dataset": "",
            "gate_dataset_version": "", "expires_at_0": "", "expires_at_1": "", "revoked_at_0": "", "revoked_at_1": ""}
    refused = client.post(url, form)
    assert refused.status_code == 200  # the form again, with its errors
    assert "The dataset gate needs a dataset." in refused.content.decode()
    response = client.post(url, {**form, "sources": "bank-app, hr-app", "gate_dataset": "refunds",
                                 "gate_dataset_version": "2", "all_sources": "on"})
    assert response.status_code == 302, response.content.decode()[:2000]
    row.refresh_from_db()
    assert (row.sources, row.all_sources, row.gate, row.gate_dataset, row.gate_dataset_version) == (
        ["bank-app", "hr-app"], True, "dataset", "refunds", 2)
    listing = client.get("/admin/feedbackhub/apitoken/").content.decode()
    assert "dataset:refunds@2" in listing and "all (grant)" in listing
    # The change takes effect at once in the process that made it.
    assert auth_tokens.authenticate(f"Bearer {secret}", scope="recall").all_sources


def test_tokens_from_before_scopes_keep_every_source_and_the_approved_gate():
    migration = importlib.import_module("feedbackhub.migrations.0005_token_sources_and_gate")
    row, _ = auth_tokens.api_token_create(name="old", scopes=["recall"], sources=["x"])
    ApiToken.objects.filter(pk=row.pk).update(sources=[], all_sources=False, gate="four_eyes")
    migration.keep_existing_tokens_working(django_apps, None)
    row.refresh_from_db()
    assert (row.all_sources, row.gate) == (True, "approved")
