"""``python manage.py seed_demo [--count N] [--seed S] [--if-empty]``: load the demo conversations."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandParser

from sessions import demo
from sessions.models import Conversation, ImportBatch


def database_is_empty() -> bool:
    """True when nothing was ever imported: no conversation and no import batch."""
    return not Conversation.objects.exists() and not ImportBatch.objects.exists()


class Command(BaseCommand):
    help = "Generate the seeded demo set (native JSONL) and import it through the import pipeline, source 'demo'."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--count", type=int, default=demo.DEFAULT_COUNT, help="conversations (default %(default)s)")
        parser.add_argument("--seed", type=int, default=demo.DEFAULT_SEED, help="random seed (default %(default)s)")
        parser.add_argument("--if-empty", action="store_true", help="do nothing unless the database is empty")

    def handle(self, *args, count: int, seed: int, if_empty: bool, **options) -> None:
        if count < 1:
            self.stderr.write("--count must be at least 1")
            raise SystemExit(2)
        if if_empty and not database_is_empty():
            self.stdout.write("Demo data not loaded: the database already holds conversations or imports.")
            return
        self.stdout.write(f"Generating {count} demo conversations (seed {seed}) and importing them...")
        batch = demo.demo_seed(count=count, seed=seed)
        self.stdout.write(self.style.SUCCESS(
            f"Demo data: {batch.conversations_created} created, {batch.conversations_updated} updated, "
            f"{batch.conversations_unchanged} unchanged, {batch.records_rejected} rejected; "
            f"{batch.turns_written} turns and {batch.feedback_written} feedback events written "
            f"(import batch {batch.pk}, {batch.get_status_display()})."
        ))
        if batch.records_rejected:
            raise SystemExit(3)
