"""python manage.py reembed [--model NAME] [--batch N] [--activate/--no-activate] [--drop-old]"""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError, CommandParser
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from annotations.recall import embedding
from annotations.recall.models import DIMENSIONS
from annotations.recall.selectors import active_model_name
from feedbackhub import embeddings

HELP = """Embed every feedback item with a model, then make it the model searches use.

Without --model, fills in what the active model is missing (items whose text changed or was never embedded).
With --model NAME (all-MiniLM-L6-v2, or a local sentence-transformers folder), embeds every item lacking a vector
for NAME while searches keep using the current model, then switches to NAME (unless --no-activate). Old vectors stay
until --drop-old, so switching back is instant. Safe to interrupt and run again: it continues where it stopped.
Set EMBEDDING_MODEL to the same NAME so a restarted deployment keeps configuring it."""


class Command(BaseCommand):
    help = HELP

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--model", default="", help="model to embed with (default: the active one)")
        parser.add_argument(
            "--batch", type=int, default=embedding.EMBED_CHUNK_SIZE,
            help=f"items embedded and committed together (default {embedding.EMBED_CHUNK_SIZE}); the model runs "
            f"{embedding.EMBED_BATCH_SIZE} texts per forward pass",
        )
        parser.add_argument(
            "--activate", action="store_true", default=True, help="make the model active when done (default)"
        )
        parser.add_argument("--no-activate", dest="activate", action="store_false", help="embed only, do not switch")
        parser.add_argument("--drop-old", action="store_true", help="after switching, delete other models' vectors")

    def handle(self, *args, **options) -> None:
        model = options["model"] or active_model_name()
        batch = options["batch"]
        if batch < 1:
            raise CommandError("--batch must be at least 1")
        if options["drop_old"] and not options["activate"]:
            raise CommandError("--drop-old needs the model to be activated")
        console = Console(stderr=True)
        try:
            width = embeddings.dimensions(model)
        except Exception as exc:
            raise CommandError(f"cannot load model {model!r}: {exc}") from None
        if width != DIMENSIONS:
            raise CommandError(f"model {model!r} makes {width}-dimensional vectors; the index stores {DIMENSIONS}")
        total = embedding.embeddings_pending_count(model=model)
        columns = (
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
            TimeRemainingColumn(),
        )  # fmt: skip
        with Progress(*columns, console=console, transient=False) as progress:
            task = progress.add_task(f"embedding with {model}", total=total)
            result = embedding.embeddings_embed_pending(
                model=model, chunk_size=batch, progress=lambda n: progress.advance(task, n)
            )
        left = embedding.embeddings_pending_count(model=model)
        self.stdout.write(f"embedded {result.embedded} item(s) with {model} in {result.chunks} chunk(s)")
        if left:
            # Items changed while this ran; the embed task or another run picks them up.
            self.stdout.write(f"{left} item(s) changed meanwhile and still wait for a vector")
        if options["activate"]:
            embedding.embedding_model_activate(name=model, drop_others=options["drop_old"])
            dropped = " (other models' vectors deleted)" if options["drop_old"] else ""
            self.stdout.write(f"active model: {model}{dropped}")
