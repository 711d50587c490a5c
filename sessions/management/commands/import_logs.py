"""python manage.py import_logs PATH... [--format native|openai|sharegpt|csv] [--source NAME]"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, CommandParser
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from sessions.imports.formats import FORMATS
from sessions.models import ImportBatch, ImportStatus
from sessions.services import DEFAULT_SOURCE, import_file

EXIT_OK = 0
EXIT_FILE_FAILED = 2
EXIT_REJECTED = 3
SHOW_REJECTIONS = 10

HELP = f"""Import conversation logs (streaming, idempotent: importing a file again creates no duplicates).

Formats: native FeedbackHub JSONL, OpenAI chat JSONL, ShareGPT JSON/JSONL, CSV with one row per turn
(docs/import-format.md); .gz files are read as they are; the format is detected when --format is not given.

Exit status: {EXIT_OK} every record of every file went in; {EXIT_REJECTED} some records were rejected (the rest went
in; the first rejections are listed with line, field and reason); {EXIT_FILE_FAILED} a whole file failed (not
found, unreadable, wrong encoding, over a size limit, unknown format) - what it imported before the failure stays.
When files end differently the highest status wins ({EXIT_FILE_FAILED} over {EXIT_REJECTED})."""


class Command(BaseCommand):
    help = HELP

    def create_parser(self, prog_name: str, subcommand: str, **kwargs):  # type: ignore[no-untyped-def]
        from argparse import RawDescriptionHelpFormatter

        parser = super().create_parser(prog_name, subcommand, **kwargs)
        parser.formatter_class = RawDescriptionHelpFormatter
        return parser

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("paths", nargs="+", metavar="PATH", help="log files (.gz accepted)")
        parser.add_argument("--format", choices=sorted(FORMATS), help="the files' format (default: detect it)")
        parser.add_argument(
            "--source",
            default=DEFAULT_SOURCE,
            help=f"app or log stream the conversations come from (default: {DEFAULT_SOURCE})",
        )

    def handle(self, *args: object, **options: object) -> None:
        paths = [Path(str(p)) for p in options["paths"]]  # type: ignore[attr-defined]
        fmt = str(options["format"]) if options.get("format") else None
        source = str(options["source"])
        if not source.strip() or len(source) > 100:
            raise CommandError("--source must be 1 to 100 characters")
        # Wide enough for the summary table when the output is a file or a pipe.
        width = max(120, shutil.get_terminal_size(fallback=(160, 24)).columns)
        console = Console(file=self.stdout._out, highlight=False, width=width)  # type: ignore[attr-defined,arg-type]
        batches: list[ImportBatch] = []
        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            DownloadColumn(),
            TextColumn("{task.fields[records]} records"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=Console(file=sys.stderr),
            transient=True,
        ) as bar:
            for path in paths:
                task = bar.add_task(escape(path.name), total=None, records=0)

                def progress(batch: ImportBatch, task: TaskID = task) -> None:
                    bar.update(
                        task, total=batch.total_bytes or None, completed=batch.bytes_read, records=batch.records_read
                    )

                batches.append(import_file(path=path, source=source, format=fmt, progress=progress))
        console.print(summary_table(batches))
        for batch in batches:
            if batch.status == ImportStatus.FAILED:
                console.print(f"[bold red]{escape(batch.file_name)} failed:[/] {escape(batch.error)}")
            elif batch.records_rejected:
                console.print(
                    f"[bold yellow]{escape(batch.file_name)}: {batch.records_rejected} record(s) rejected[/]"
                    + (f" (first {SHOW_REJECTIONS} shown)" if batch.records_rejected > SHOW_REJECTIONS else "")
                )
                for r in batch.rejections.all()[:SHOW_REJECTIONS]:
                    field = f" {r.field}:" if r.field else ""
                    console.print(f"  line {r.line}:{escape(field)} {escape(r.reason)}")
        code = exit_code(batches)
        if code:
            sys.exit(code)


def exit_code(batches: list[ImportBatch]) -> int:
    if any(b.status == ImportStatus.FAILED for b in batches):
        return EXIT_FILE_FAILED
    if any(b.records_rejected for b in batches):
        return EXIT_REJECTED
    return EXIT_OK


def summary_table(batches: list[ImportBatch]) -> Table:
    table = Table(title="Import summary")
    for name in ("file", "format", "status", "created", "updated", "unchanged", "rejected", "turns", "feedback"):
        table.add_column(name, justify="left" if name in ("file", "format", "status") else "right")
    table.add_column("duration", justify="right")
    table.add_column("turns/s", justify="right")
    for b in batches:
        seconds = b.duration_seconds or 0.0
        rate = f"{b.turns_written / seconds:,.0f}" if seconds and b.turns_written else "-"
        table.add_row(
            escape(b.file_name), b.format or "-", b.get_status_display(), f"{b.conversations_created:,}",
            f"{b.conversations_updated:,}", f"{b.conversations_unchanged:,}", f"{b.records_rejected:,}",
            f"{b.turns_written:,}", f"{b.feedback_written:,}", f"{seconds:.2f}s", rate,
        )  # fmt: skip
    return table
