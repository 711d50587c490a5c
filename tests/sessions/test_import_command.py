"""python manage.py import_logs: progress, summary table, first rejections and exit codes."""

from __future__ import annotations

import io
import subprocess
import sys

import pytest
from django.conf import settings
from django.core.management import call_command

from sessions.models import Conversation, ImportBatch
from tests.sessions.imports.conftest import conversation, jsonl

pytestmark = pytest.mark.django_db


def run(*args: str) -> tuple[int, str]:
    out = io.StringIO()
    try:
        call_command("import_logs", *args, stdout=out)
    except SystemExit as exc:
        return int(exc.code or 0), out.getvalue()
    return 0, out.getvalue()


def test_all_records_in_exits_0_with_a_summary(tmp_path):
    a = tmp_path / "a.jsonl"
    a.write_bytes(jsonl([conversation("c-1", turns=4), conversation("c-2", turns=2)]))
    code, out = run(str(a), "--source", "support-bot")
    assert code == 0
    assert "Import summary" in out and "a.jsonl" in out and "native" in out and "Done" in out
    row = next(line for line in out.splitlines() if "a.jsonl" in line)
    assert [c.strip() for c in row.split("│")[4:10]] == ["2", "0", "0", "0", "6", "0"]
    assert "turns/s" in out
    assert set(Conversation.objects.values_list("source", flat=True)) == {"support-bot"}

    code, out = run(str(a), "--source", "support-bot")
    row = next(line for line in out.splitlines() if "a.jsonl" in line)
    assert code == 0 and [c.strip() for c in row.split("│")[4:8]] == ["0", "0", "2", "0"]


def test_rejected_records_exit_3_and_are_listed(tmp_path):
    bad = conversation("bad")
    bad["turns"][0]["role"] = "robot"
    path = tmp_path / "mixed.jsonl"
    path.write_bytes(jsonl([conversation("c-1"), b"{oops", bad]))
    code, out = run(str(path), "--format", "native")
    assert code == 3
    assert "2 record(s) rejected" in out
    assert "line 2: invalid JSON" in out
    assert "line 3: turns[0].role: must be one of" in out
    assert Conversation.objects.count() == 1


def test_a_failed_file_exits_2_even_when_another_file_went_in(tmp_path, settings):
    good = tmp_path / "good.jsonl"
    good.write_bytes(jsonl([conversation("c-1")]))
    code, out = run(str(good), str(tmp_path / "missing.jsonl"))
    assert code == 2
    assert "missing.jsonl failed" in out and "cannot be read" in out
    assert ImportBatch.objects.count() == 2 and Conversation.objects.count() == 1


def test_markup_in_file_content_is_printed_literally(tmp_path):
    bad = conversation("c-1")
    bad["turns"][0]["role"] = "[red]robot[/red]"
    path = tmp_path / "[bold]x.jsonl"
    path.write_bytes(jsonl([bad]))
    code, out = run(str(path), "--format", "native")
    assert code == 3
    assert "[bold]x.jsonl" in out and "got '[red]robot[/red]'" in out


def test_help_documents_the_exit_codes():
    result = subprocess.run(
        [sys.executable, "manage.py", "import_logs", "--help"],
        cwd=settings.BASE_DIR, capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    assert "Exit status: 0" in result.stdout and "3 some records were rejected" in result.stdout
    assert "2 a whole file failed" in result.stdout
