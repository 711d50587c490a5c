"""``python manage.py create_widget_key NAME --source APP --origin https://app.example``: a publishable widget key.

The key is public (it goes into the host page's script tag) and is printed to stdout; the snippet to paste goes to
stderr. ``--origin`` (repeatable) lists the pages' origins allowed to send feedback with it; ``--category``
(repeatable) replaces the default "What was wrong?" choices (WIDGET_DEFAULT_CATEGORIES).
"""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from feedbackhub import widget_keys


class Command(BaseCommand):
    help = "Create a publishable key for the feedback widget and print it."

    def add_arguments(self, parser) -> None:
        parser.add_argument("name", help="which app embeds the widget")
        parser.add_argument("--source", required=True, help="the conversation source (app) it writes feedback for")
        parser.add_argument("--origin", action="append", dest="origins", required=True,
                            help="an origin allowed to use the key, e.g. https://app.example (repeatable)")
        parser.add_argument("--category", action="append", dest="categories", default=None,
                            help="a 'What was wrong?' choice (repeatable; default: WIDGET_DEFAULT_CATEGORIES)")
        parser.add_argument("--rate", type=int, default=120, help="requests a minute the key may make (default 120)")
        parser.add_argument("--base-url", default="http://127.0.0.1:8000",
                            help="where FeedbackHub is served, for the printed snippet")

    def handle(self, *args, name: str, source: str, origins: list[str], categories: list[str] | None, rate: int,
               base_url: str, **options):
        try:
            row = widget_keys.widget_key_create(name=name, source=source, origins=origins, categories=categories,
                                                rate_per_minute=rate)
        except ValidationError as exc:
            raise CommandError("; ".join(f"{k}: {' '.join(v)}" for k, v in exc.message_dict.items())) from exc
        base = base_url.rstrip("/")
        self.stderr.write(
            f"Created widget key {row.name!r} for source {row.source!r}, origins {', '.join(row.origins)}. "
            f"Add to the page:\n"
            f'  <script src="{base}/widget/v1.js" data-key="{row.key}" defer></script>\n'
            f"  then FeedbackHub.attach(element, {{conversation: ID, turn: POSITION}}) under each reply."
        )
        self.stdout.write(row.key)
