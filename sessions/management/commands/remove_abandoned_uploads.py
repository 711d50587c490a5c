"""Remove upload files of failed imports and files no import refers to, older than IMPORT_FAILED_UPLOAD_HOURS."""

from datetime import timedelta

from django.core.management.base import BaseCommand, CommandParser

from sessions.imports.uploads import abandoned_uploads_remove


class Command(BaseCommand):
    help = __doc__

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--hours", type=float, default=None, help="age in hours (default IMPORT_FAILED_UPLOAD_HOURS)"
        )

    def handle(self, *args, hours: float | None = None, **options) -> None:
        removed = abandoned_uploads_remove(older_than=None if hours is None else timedelta(hours=hours))
        self.stdout.write(f"removed {removed} abandoned upload files")
