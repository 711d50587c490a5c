"""``python manage.py create_api_token NAME --scope recall --source APP``: create an API token and print it once.

``--source`` (repeatable) binds the token to the conversation sources of the app that uses it; ``--all-sources``
grants every source instead. ``--gate approved|four_eyes|dataset`` (default four_eyes) chooses what recall may
return as examples; the dataset gate takes ``--dataset NAME[@VERSION]`` (``@latest`` or a version number).

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
from feedbackhub.models import ApiScope, RecallGate


class Command(BaseCommand):
    help = "Create an API token with the given scopes and print it once."

    def add_arguments(self, parser) -> None:
        parser.add_argument("name", help="who or what uses the token")
        parser.add_argument(
            "--scope", action="append", dest="scopes", required=True, choices=ApiScope.values,
            help="a scope the token holds (repeatable)",
        )
        parser.add_argument(
            "--source", action="append", dest="sources", default=[],
            help="a conversation source (app) whose data the token sees (repeatable)",
        )
        parser.add_argument("--all-sources", action="store_true", help="grant the token every source's data")
        parser.add_argument(
            "--gate", choices=RecallGate.values, default=RecallGate.FOUR_EYES,
            help="what recall may return as examples (default: four_eyes)",
        )
        parser.add_argument("--dataset", default="", help="for --gate dataset: NAME, NAME@latest or NAME@N")
        parser.add_argument("--expires-days", type=int, default=None, help="expire after this many days")
        parser.add_argument("--user", default=None, help="username recorded as the token's creator")

    def handle(self, *args, name: str, scopes: list[str], expires_days: int | None, user: str | None, **options):
        if options["dataset"] and options["gate"] != RecallGate.DATASET:
            raise CommandError("--dataset: only with --gate dataset.")
        dataset, version = "", None
        try:
            if options["gate"] == RecallGate.DATASET:
                if not options["dataset"]:
                    raise CommandError("--gate dataset: give --dataset NAME[@VERSION].")
                dataset, version = auth_tokens.parse_dataset_spec(options["dataset"])
        except ValidationError as exc:
            raise CommandError(f"--dataset: {' '.join(exc.messages)}") from exc
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
                name=name, scopes=scopes, created_by=created_by, expires_at=expires_at,
                sources=options["sources"], all_sources=options["all_sources"], gate=options["gate"],
                gate_dataset=dataset, gate_dataset_version=version,
            )
        except ValidationError as exc:
            raise CommandError("; ".join(f"{k}: {' '.join(v)}" for k, v in exc.message_dict.items())) from exc
        self.stderr.write(
            f"Created API token {row.name!r} (id {row.pk}, prefix {row.prefix}, scopes {', '.join(row.scopes)}"
            f", sources {'all' if row.all_sources else ', '.join(row.sources) or 'none'}, gate {row.gate_label}"
            f"{', expires ' + row.expires_at.isoformat() if row.expires_at else ''}). It is shown only this once:"
        )
        self.stdout.write(secret)
