"""Export curated examples (or review annotations) to a file, with a progress bar.

    python manage.py export_dataset --format openai --dataset "Geography fixes" out.jsonl
    python manage.py export_dataset --format dpo --dataset "Geography fixes" --version 3 pairs.jsonl
    python manage.py export_dataset --format dpo --dpo-form messages --dataset "Geography fixes" pairs.jsonl
    python manage.py export_dataset --format hf --dataset "Geography fixes" --version 3 geo/     # a folder
    python manage.py export_dataset --format hf --dataset "Geography fixes" geo.zip              # or a zip
    python manage.py export_dataset --format w3c annotations.jsonld        # every annotation
    python manage.py export_dataset --format csv --dataset "Geography fixes" examples.csv

Without ``--version`` the dataset's approved examples are exported as they are now; without ``--dataset``, the
approved examples of every dataset (w3c: every annotation). ``-`` as OUT writes to standard output.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, CommandParser
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from annotations.curation import exporters
from annotations.curation.exporters import dpo, hf
from annotations.curation.models import Dataset, DatasetVersion


class Command(BaseCommand):
    help = "Export a dataset as OpenAI chat JSONL, DPO pairs, a Hugging Face folder, W3C Web Annotation or CSV."
    # An export reads; the system checks (several seconds with every app loaded) add nothing to it.
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        # --version names a dataset version here; it replaces Django's "show the Django version" option.
        parser.conflict_handler = parser._optionals.conflict_handler = "resolve"
        parser.add_argument("--format", required=True, choices=sorted(exporters.EXPORTERS), dest="format")
        parser.add_argument("--dataset", help="dataset name (or slug); default: every dataset")
        parser.add_argument("--version", type=int, dest="dataset_version",
                            help="export this frozen version instead of the current approved examples")
        parser.add_argument("--dpo-form", choices=["text", "messages"], default="text",
                            help="dpo: prompt/chosen/rejected as strings (default) or as chat message lists")
        parser.add_argument("--base-url", default=os.environ.get("SITE_URL", "http://localhost:8000"),
                            help="the app's address, for links in W3C targets and the dataset card")
        parser.add_argument("--no-progress", action="store_true", help="no progress bar")
        parser.add_argument("out", help="output file (a folder for --format hf unless it ends in .zip; - = stdout)")

    def handle(self, *args, **options) -> None:
        fmt = options["format"]
        dataset = version = None
        if options["dataset"]:
            name = options["dataset"]
            dataset = Dataset.objects.filter(name=name).first() or Dataset.objects.filter(slug=name).first()
            if dataset is None:
                raise CommandError(f"No dataset named {name!r}.")
        if options["dataset_version"] is not None:
            if dataset is None:
                raise CommandError("--version needs --dataset.")
            version = DatasetVersion.objects.filter(dataset=dataset, number=options["dataset_version"]).first()
            if version is None:
                raise CommandError(f"Dataset {dataset.name!r} has no version {options['dataset_version']}.")
        exporter = dpo.MESSAGES_EXPORTER if fmt == "dpo" and options["dpo_form"] == "messages" else exporters.get(fmt)
        source = exporters.ExportSource(dataset=dataset, version=version, base_url=options["base_url"])
        out = options["out"]
        to_stdout = out == "-"
        console = Console(stderr=True)
        total = exporter.count(source)
        what = "annotations" if fmt == "w3c" else "examples"
        with Progress(
            TextColumn(f"[bold]{fmt}[/] {escape(source.label)}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=console,
            disable=options["no_progress"] or to_stdout,
        ) as bar:
            task = bar.add_task(what, total=total)

            def progress(n: int) -> None:
                bar.update(task, completed=n)

            try:
                if to_stdout:
                    size = exporters.write(exporter, source, sys.stdout.buffer, progress=progress)
                elif fmt == "hf" and not out.endswith(".zip"):
                    size = hf.EXPORTER.write_folder(source, Path(out), progress=progress)
                else:
                    path = Path(out)
                    path.parent.mkdir(parents=True, exist_ok=True)
                    with path.open("wb") as stream:
                        size = exporters.write(exporter, source, stream, progress=progress)
            except OSError as exc:
                raise CommandError(f"{out}: {exc.strerror or exc}") from None
        if not to_stdout:
            console.print(f"wrote {total} {what} ({size:,} bytes) to {escape(out)}")
