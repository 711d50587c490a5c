"""``python manage.py ensure_admin``: make sure the development admin login exists and print it.

The password is generated once, kept in ``.data/admin-login.txt`` (mode 600, next to the embedded database it
belongs to) and printed on every ``make run``. If someone changed the admin's password since, it is left alone.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from django.contrib.auth.models import Group, User
from django.core.management.base import BaseCommand
from django.db import transaction

from feedbackhub import devstack, roles

ADMIN_USERNAME = "admin"


def credentials_path() -> Path:
    return devstack.DATA_DIR / "admin-login.txt"


@dataclass(frozen=True)
class AdminLogin:
    username: str
    password: str
    #: False when the account's password no longer matches the stored one (changed by hand since).
    password_valid: bool
    created: bool


def _read_password(path: Path) -> str | None:
    try:
        for line in path.read_text(encoding="utf-8").splitlines():
            key, _, value = line.partition("=")
            if key.strip() == "password" and value.strip():
                return value.strip()
    except FileNotFoundError:
        return None
    return None


def _write_password(path: Path, username: str, password: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    # Created with mode 600 from the start, so the password is never readable by others, not even briefly.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write("# FeedbackHub development admin login (generated once by `make run`)\n")
        fh.write(f"username={username}\npassword={password}\n")
    path.chmod(0o600)


@transaction.atomic
def ensure_admin_login(*, path: Path | None = None, username: str = ADMIN_USERNAME) -> AdminLogin:
    """Create the superuser ``username`` if missing, with the password kept in ``path`` (generated once).

    Precondition: migrations have run (the role groups exist).
    """
    path = path or credentials_path()
    password = _read_password(path)
    if password is None:
        password = secrets.token_urlsafe(15)
        _write_password(path, username, password)
        stored_new = True
    else:
        stored_new = False
        if path.stat().st_mode & 0o077:
            path.chmod(0o600)
    user = User.objects.filter(username=username).first()
    created = user is None
    if user is None:
        user = User.objects.create_superuser(username=username, email="", password=password)
    elif stored_new:
        # A new password file for an existing account (the file was removed): the file is the source of truth.
        user.set_password(password)
        user.is_superuser = user.is_staff = user.is_active = True
        user.save()
    group = Group.objects.filter(name=roles.ADMIN).first()
    if group is not None:
        user.groups.add(group)
    return AdminLogin(username=username, password=password, password_valid=user.check_password(password),
                      created=created)


def describe(login: AdminLogin, path: Path | None = None) -> str:
    path = path or credentials_path()
    if login.password_valid:
        return f"username {login.username}  password {login.password}   (kept in {path})"
    return f"username {login.username}  (its password was changed since it was generated; {path} is out of date)"


class Command(BaseCommand):
    help = "Create the development superuser 'admin' once (password kept in .data/admin-login.txt) and print it."

    def handle(self, *args, **options) -> None:
        login = ensure_admin_login()
        self.stdout.write(("Created " if login.created else "") + "Admin login: " + describe(login))
