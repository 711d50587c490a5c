import gzip
import hashlib
import json
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse

from sessions.models import Conversation, ImportBatch, ImportStatus
from sessions.tasks import import_batch_process
from tests.sessions.factories import ImportBatchFactory, ImportRejectionFactory

pytestmark = pytest.mark.django_db

LIST_URL = reverse("conversations:import_list")


def _record(i: int, **extra) -> dict:
    record = {
        "id": f"conv-{i}",
        "user": {"id": f"u{i}", "role": "customer"},
        "environment": "prod",
        "model_version": "m-1",
        "started_at": "2026-05-01T10:00:00Z",
        "turns": [
            {"role": "user", "content": f"Question {i}?", "created_at": "2026-05-01T10:00:00Z"},
            {"role": "assistant", "content": f"Answer {i}.", "created_at": "2026-05-01T10:00:02Z",
             "feedback": [{"type": "thumbs_up", "created_at": "2026-05-01T10:00:09Z"}]},
        ],
    }
    record.update(extra)
    return record


def _jsonl(records) -> bytes:
    return b"".join(json.dumps(r).encode() + b"\n" for r in records)


@pytest.fixture(autouse=True)
def upload_dir(settings, tmp_path) -> Path:
    settings.IMPORT_UPLOAD_DIR = tmp_path / "uploads"
    return settings.IMPORT_UPLOAD_DIR


def _stored_files(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file()] if folder.exists() else []


def _upload(client, content: bytes, name="logs.jsonl", **data):
    return client.post(LIST_URL, {"file": SimpleUploadedFile(name, content), "source": "support-bot", **data})


@pytest.mark.parametrize("method", ["get", "post"])
def test_only_moderators_and_admins_may_import(client, analyst, expert, upload_dir, method):
    for user in (analyst, expert):
        client.force_login(user)
        if method == "get":
            assert client.get(LIST_URL).status_code == 403
        else:
            assert _upload(client, _jsonl([_record(1)])).status_code == 403
    assert not _stored_files(upload_dir) and not ImportBatch.objects.exists()


def test_a_batch_page_is_for_importers_only(client, analyst):
    batch = ImportBatchFactory(file_name="a.jsonl", source="s")
    client.force_login(analyst)
    assert client.get(batch.get_absolute_url()).status_code == 403


def test_moderator_and_admin_see_the_upload_form(client, moderator):
    client.force_login(moderator)
    response = client.get(LIST_URL)
    assert response.status_code == 200
    assert b'enctype="multipart/form-data"' in response.content and b"Detect automatically" in response.content
    admin = User.objects.create_superuser("root", password="pw-for-tests-only")
    client.force_login(admin)
    assert client.get(LIST_URL).status_code == 200


def test_upload_is_stored_hashed_and_queued_after_commit(moderator_client, moderator, upload_dir,
                                                         django_capture_on_commit_callbacks):
    content = _jsonl([_record(i) for i in range(3)])
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = _upload(moderator_client, content)
    batch = ImportBatch.objects.get()
    assert response.status_code == 302 and response["Location"] == batch.get_absolute_url()
    assert len(callbacks) == 1  # the Celery task is sent only once the batch row is committed
    assert (batch.status, batch.source, batch.file_name, batch.created_by) == (
        ImportStatus.QUEUED, "support-bot", "logs.jsonl", moderator)
    stored = Path(batch.stored_path)
    assert stored.parent.parent == upload_dir and stored.name == "logs.jsonl"
    assert stored.read_bytes() == content
    assert batch.total_bytes == len(content) and batch.sha256 == hashlib.sha256(content).hexdigest()

    # What the worker does with it (the real worker runs it in tests/integration).
    import_batch_process(batch.pk)
    batch.refresh_from_db()
    assert batch.status == ImportStatus.DONE and batch.conversations_created == 3
    assert Conversation.objects.filter(source="support-bot").count() == 3
    assert not stored.exists() and batch.stored_path == "" and not _stored_files(upload_dir)


def test_gzip_upload_with_explicit_format(moderator_client, django_capture_on_commit_callbacks):
    content = gzip.compress(_jsonl([_record(i) for i in range(2)]))
    with django_capture_on_commit_callbacks(execute=False):
        _upload(moderator_client, content, name="logs.jsonl.gz", format="native")
    batch = ImportBatch.objects.get()
    assert batch.format == "native"
    import_batch_process(batch.pk)
    batch.refresh_from_db()
    assert (batch.status, batch.conversations_created) == (ImportStatus.DONE, 2)


def test_a_failed_import_keeps_the_upload_and_reports_the_error(moderator_client, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False):
        _upload(moderator_client, b"this is not a log file\n", name="notes.txt")
    batch = ImportBatch.objects.get()
    import_batch_process(batch.pk)
    batch.refresh_from_db()
    assert batch.status == ImportStatus.FAILED and "notes.txt" in batch.error
    assert Path(batch.stored_path).exists()
    page = moderator_client.get(batch.get_absolute_url())
    assert batch.error.encode() in page.content or b"notes.txt" in page.content


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"source": "bad<source>"}, b"Use letters, digits"),
        ({"format": "yaml"}, b"Select a valid choice"),
    ],
)
def test_refused_form_keeps_no_file(moderator_client, upload_dir, data, message):
    response = _upload(moderator_client, _jsonl([_record(1)]), **data)
    assert response.status_code == 400 and message in response.content
    assert not _stored_files(upload_dir) and not ImportBatch.objects.exists()


def test_missing_file_is_refused(moderator_client):
    response = moderator_client.post(LIST_URL, {"source": "x"})
    assert response.status_code == 400 and b"This field is required" in response.content


def test_oversize_upload_is_stopped_with_a_clear_error(moderator_client, settings, upload_dir):
    settings.IMPORT_MAX_FILE_BYTES = 1000
    response = _upload(moderator_client, b"x" * 5000)
    assert response.status_code == 400
    assert b"larger than the import limit" in response.content and b"IMPORT_MAX_FILE_BYTES" in response.content
    assert not _stored_files(upload_dir) and not ImportBatch.objects.exists()


def test_upload_requires_the_csrf_token(moderator, upload_dir):
    client = Client(enforce_csrf_checks=True)
    client.force_login(moderator)
    response = _upload(client, _jsonl([_record(1)]))
    assert response.status_code == 403
    assert not ImportBatch.objects.exists()


def test_running_batch_page_polls_its_status_fragment(moderator_client):
    batch = ImportBatchFactory(file_name="big.jsonl", source="s", status=ImportStatus.RUNNING,
                                       total_bytes=4000, bytes_read=1000, records_read=42)
    page = moderator_client.get(batch.get_absolute_url())
    html = page.content.decode()
    assert 'hx-trigger="every 1s"' in html and '<progress max="100" value="25"' in html
    assert ">42<" in html and "<h1>" in html

    fragment = moderator_client.get(batch.get_absolute_url(), headers={"HX-Request": "true",
                                                                      "HX-Target": "import-status"})
    body = fragment.content.decode()
    assert body.lstrip().startswith('<section id="import-status"') and "<h1>" not in body
    assert 'hx-trigger="every 1s"' in body


def test_finished_batch_stops_polling_and_shows_the_escaped_report(moderator_client):
    batch = ImportBatchFactory(
        file_name="<b>x</b>.jsonl", source="s", status=ImportStatus.DONE_WITH_REJECTIONS, total_bytes=10,
        bytes_read=10, records_read=5, conversations_created=3, conversations_updated=1, conversations_unchanged=0,
        records_rejected=2, turns_written=9, feedback_written=4,
    )
    ImportRejectionFactory(batch=batch, line=4, field="turns[0].role", reason="must be one of user, ...",
                                   excerpt='{"id": "<script>alert(1)</script>"}')
    ImportRejectionFactory(batch=batch, line=2, field="id", reason="missing", excerpt="{}")
    html = moderator_client.get(batch.get_absolute_url()).content.decode()
    status = html[html.index('<section id="import-status"'):]
    assert "hx-trigger" not in status[:status.index("</section>")]  # the header's inbox count still polls
    assert 'data-count="created">3<' in html and 'data-count="rejected">2<' in html
    assert 'data-count="turns">9<' in html and 'data-count="feedback">4<' in html
    assert "<script>alert(1)" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<b>x</b>" not in html and "&lt;b&gt;x&lt;/b&gt;" in html
    assert html.index(">2</td>") < html.index(">4</td>")  # rejections in line order
    assert "turns[0].role" in html


def test_import_pages_run_a_fixed_number_of_queries(moderator_client, moderator, django_assert_num_queries):
    for i in range(5):
        batch = ImportBatchFactory(file_name=f"f{i}.jsonl", source="s", records_rejected=3,
                                           status=ImportStatus.DONE_WITH_REJECTIONS, created_by=moderator)
        for line in range(3):
            ImportRejectionFactory(batch=batch, line=line + 1, reason="bad")
    # the user with their groups (role check; the session comes from Redis), then the page's own queries
    with django_assert_num_queries(2):
        assert moderator_client.get(LIST_URL).status_code == 200
    with django_assert_num_queries(3):
        assert moderator_client.get(batch.get_absolute_url()).status_code == 200
