"""``python manage.py create_api_token NAME --scope recall``: create an API token and print it once.

Only a hash is stored, so the printed token cannot be shown again; revoke it in the admin and make a new one if
it is lost. The token alone goes to stdout (``TOKEN=$(python manage.py create_api_token bot --scope recall)``);
what it is goes to stderr.
"""

from __future__ import annotations

import datetime as dt

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from feedbackhub import auth_tokens
from feedbackhub.models import ApiScope


class Command(BaseCommand):
    help = "Create an API token with the given scopes and print it once."

    def add_arguments(self, parser) -> None:
        parser.add_argument("name", help="who or what uses the token")
        parser.add_argument(
            "--scope", action="append", dest="scopes", required=True, choices=ApiScope.values,
            help="a scope the token holds (repeatable)",
        )
        parser.add_argument("--expires-days", type=int, default=None, help="expire after this many days")
        parser.add_argument("--user", default=None, help="username recorded as the token's creator")

    def handle(self, *args, name: str, scopes: list[str], expires_days: int | None, user: str | None, **options):
        created_by = None
        if user:
            try:
                created_by = get_user_model().objects.get_by_natural_key(user)
            except get_user_model().DoesNotExist:
                raise CommandError(f"--user: no user named {user!r}.") from None
        expires_at = None
        if expires_days is not None:
            if expires_days <= 0:
                raise CommandError("--expires-days: give a positive number of days.")
            expires_at = timezone.now() + dt.timedelta(days=expires_days)
        try:
            row, secret = auth_tokens.api_token_create(
                name=name, scopes=scopes, created_by=created_by, expires_at=expires_at
            )
        except ValidationError as exc:
            raise CommandError("; ".join(f"{k}: {' '.join(v)}" for k, v in exc.message_dict.items())) from exc
        self.stderr.write(
            f"Created API token {row.name!r} (id {row.pk}, prefix {row.prefix}, scopes {', '.join(row.scopes)}"
            f"{', expires ' + row.expires_at.isoformat() if row.expires_at else ''}). It is shown only this once:"
        )
        self.stdout.write(secret)
