"""``python manage.py seed_demo [--count N] [--seed S] [--if-empty] [--no-reviews]``: load the demo set."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandParser

from feedbackhub.demo import generator, seeding


class Command(BaseCommand):
    help = (
        "Generate the seeded demo conversations, import them through the import pipeline (source 'demo'), then add "
        "reviewers' comments, suggestions, corrections, a curated dataset and triage clusters."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--count", type=int, default=generator.DEFAULT_COUNT,
                            help="conversations (default %(default)s)")
        parser.add_argument("--seed", type=int, default=generator.DEFAULT_SEED,
                            help="random seed (default %(default)s)")
        parser.add_argument("--if-empty", action="store_true", help="do nothing unless the database is empty")
        parser.add_argument("--no-reviews", action="store_true",
                            help="import the conversations only (no review work, no embedding, no clusters)")

    def handle(self, *args, count: int, seed: int, if_empty: bool, no_reviews: bool, **options) -> None:
        if count < 1:
            self.stderr.write("--count must be at least 1")
            raise SystemExit(2)
        if if_empty and not seeding.database_is_empty():
            self.stdout.write("Demo data not loaded: the database already holds conversations or imports.")
            return
        self.stdout.write(f"Generating {count} demo conversations (seed {seed}) and importing them...")
        result = seeding.demo_seed(count=count, seed=seed, with_reviews=not no_reviews)
        batch, done = result.batch, result.reviews
        self.stdout.write(self.style.SUCCESS(
            f"Demo data: {batch.conversations_created} created, {batch.conversations_updated} updated, "
            f"{batch.conversations_unchanged} unchanged, {batch.records_rejected} rejected; "
            f"{batch.turns_written} turns and {batch.feedback_written} feedback events written "
            f"(import batch {batch.pk}, {batch.get_status_display()})."
        ))
        if not no_reviews:
            self.stdout.write(
                f"Reviews: {done.comments} comments ({done.replies} with replies), {done.suggestions} suggestions "
                f"({done.accepted} accepted), {done.corrections} corrections ({done.approved} approved), "
                f"{done.examples} dataset examples in {done.versions} version(s); {result.clusters} triage clusters; "
                f"a review queue of {result.queue_items} replies."
            )
        if batch.records_rejected:
            raise SystemExit(3)
