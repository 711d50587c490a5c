"""Login lock-out, production settings and password rules."""

import os
import subprocess
import sys

import pytest
from django.conf import settings as django_settings
from django.contrib.auth.models import User
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.management import call_command

PASSWORD = "the-right-password-7"


def _login(client, password: str, *, address: str = "10.0.0.1"):
    return client.post("/login/", {"username": "alice", "password": password}, REMOTE_ADDR=address)


@pytest.fixture
def alice(db) -> User:
    return User.objects.create_user("alice", password=PASSWORD)


def test_wrong_passwords_lock_the_account_out_even_for_the_right_one(client, alice, settings):
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        assert _login(client, "guess").status_code == 200  # the login page again, with its error
    locked = _login(client, "guess")
    assert locked.status_code == 429
    assert b"Too many failed logins" in locked.content
    refused = _login(client, PASSWORD)
    assert refused.status_code == 429
    assert "_auth_user_id" not in client.session


def test_lock_out_is_per_username_and_address(client, alice, settings):
    for _ in range(settings.AXES_FAILURE_LIMIT):
        _login(client, "guess")
    response = _login(client, PASSWORD, address="10.0.0.2")
    assert response.status_code == 302
    assert client.session["_auth_user_id"] == str(alice.pk)


def test_axes_reset_lifts_the_lock_out(client, alice, settings):
    for _ in range(settings.AXES_FAILURE_LIMIT):
        _login(client, "guess")
    assert _login(client, PASSWORD).status_code == 429
    call_command("axes_reset_username", "alice")
    response = _login(client, PASSWORD)
    assert response.status_code == 302
    assert client.session["_auth_user_id"] == str(alice.pk)


def test_a_success_resets_the_count(client, alice, settings):
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        _login(client, "guess")
    assert _login(client, PASSWORD).status_code == 302
    client.logout()
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        _login(client, "guess")
    assert _login(client, PASSWORD).status_code == 302


def test_admin_lists_lock_outs(client, alice, settings):
    for _ in range(settings.AXES_FAILURE_LIMIT):
        _login(client, "guess")
    client.force_login(User.objects.create_superuser("root", password=PASSWORD))
    response = client.get("/admin/axes/accessattempt/")
    assert response.status_code == 200
    assert b"alice" in response.content


def test_password_validators_refuse_numeric_short_and_common_passwords():
    for weak in ("84736251938", "short", "password123"):
        with pytest.raises(ValidationError):
            validate_password(weak)
    validate_password("a long unusual phrase 42")


def _deploy_check(**env: str) -> subprocess.CompletedProcess:
    """`manage.py check --deploy --fail-level WARNING` in a fresh process with production-like environment."""
    # Not this test process's own switches: the browser tests allow the ORM inside Playwright's event loop.
    inherited = {k: v for k, v in os.environ.items() if k != "DJANGO_ALLOW_ASYNC_UNSAFE"}
    environment = {
        **inherited,
        "DEBUG": "0",
        "SECRET_KEY": "x7Hq!" + "k2Lm9Pz4Rt8Wv1Ny6Bc3Df5Gh0Js" * 2,
        "ALLOWED_HOSTS": "feedbackhub.example.com",
        "DJANGO_SETTINGS_MODULE": "feedbackhub.settings",
        **env,
    }
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=django_settings.BASE_DIR,
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_production_settings_pass_the_deploy_checks():
    result = _deploy_check()
    assert result.returncode == 0, result.stdout + result.stderr
    assert "WARNINGS" not in result.stderr + result.stdout


def test_the_deploy_checks_can_fail():
    result = _deploy_check(SECURE_HSTS_SECONDS="0", SECURE_SSL_REDIRECT="0")
    assert result.returncode != 0
    assert "security.W004" in result.stderr + result.stdout
    assert "security.W008" in result.stderr + result.stdout


def test_development_stays_on_plain_http():
    # The suite runs with the development settings (DEBUG=1): no redirect to https, no HSTS.
    assert not django_settings.SECURE_SSL_REDIRECT
    assert django_settings.SECURE_HSTS_SECONDS == 0
