import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
from django.contrib.auth.models import User

from feedbackhub.management.commands import start
from feedbackhub.management.commands.ensure_admin import ensure_admin_login
from sessions.models import Conversation


@pytest.mark.django_db
def test_admin_login_is_generated_once_kept_private_and_printed_again(tmp_path):
    path = tmp_path / "admin-login.txt"
    first = ensure_admin_login(path=path)
    assert first.created and first.password_valid and len(first.password) >= 16
    assert path.stat().st_mode & 0o777 == 0o600
    admin = User.objects.get(username="admin")
    assert admin.is_superuser and admin.is_staff and admin.check_password(first.password)
    assert admin.groups.filter(name="admin").exists()

    second = ensure_admin_login(path=path)
    assert (second.created, second.password, second.password_valid) == (False, first.password, True)
    assert User.objects.filter(username="admin").count() == 1


@pytest.mark.django_db
def test_a_password_changed_by_hand_is_left_alone(tmp_path):
    path = tmp_path / "admin-login.txt"
    login = ensure_admin_login(path=path)
    admin = User.objects.get(username="admin")
    admin.set_password("changed-by-the-admin")
    admin.save()
    again = ensure_admin_login(path=path)
    assert not again.password_valid
    admin.refresh_from_db()
    assert admin.check_password("changed-by-the-admin") and not admin.check_password(login.password)


@pytest.mark.django_db
def test_a_removed_password_file_gets_a_new_password(tmp_path):
    path = tmp_path / "admin-login.txt"
    old = ensure_admin_login(path=path)
    path.unlink()
    new = ensure_admin_login(path=path)
    assert new.password != old.password and new.password_valid
    assert User.objects.get(username="admin").check_password(new.password)


@pytest.mark.django_db
def test_demo_data_loads_on_first_start_only():
    said = []
    assert start.seed_demo_if_empty(said.append) is True
    loaded = Conversation.objects.count()
    assert loaded > 100
    assert start.seed_demo_if_empty(said.append) is False
    assert Conversation.objects.count() == loaded


def test_children_are_web_worker_and_beat_on_the_chosen_port():
    commands = start.child_commands(host="127.0.0.1", port=8123, concurrency=3, reload=False, python="py")
    assert commands["web"][-2:] == ["127.0.0.1:8123", "--noreload"]
    assert commands["worker"][:6] == ["py", "-m", "celery", "-A", "feedbackhub", "worker"]
    assert "--concurrency=3" in commands["worker"]
    assert commands["beat"][:6] == ["py", "-m", "celery", "-A", "feedbackhub", "beat"]


@pytest.mark.django_db
def test_services_started_before_this_process_are_not_ours():
    owned = start.OwnedServices.detect(since=time.time() + 3600)
    assert (owned.postgres, owned.redis) == (False, False)
    assert start.process_started_at() <= time.time()
    # Started after the epoch: counted as started "by us" (detect reads the servers' real start times).
    owned = start.OwnedServices.detect(since=0)
    assert owned.postgres == start.embedded_database() and owned.redis == start.embedded_redis()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is gone for our purposes (its parent has not reaped it yet).
    with open(f"/proc/{pid}/stat") as fh:
        return fh.read().rsplit(")", 1)[1].split()[0] != "Z"


SUPERVISE = textwrap.dedent("""
    import os
    import sys
    import django
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "feedbackhub.settings")
    django.setup()
    from feedbackhub.management.commands.start import Supervisor
    m = Supervisor()
    for name, cmd in [("one", "exec sleep 300"), ("two", "exec sleep 301"), ("three", sys.argv[1])]:
        m.add_process(name, cmd)
    m.loop()
    print("DIED", m.died, flush=True)
    sys.exit(1 if m.died else 0)
""")


def _run_supervisor(third: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", SUPERVISE, third], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)


def _child_pids(proc: subprocess.Popen, wanted: int) -> tuple[list[int], list[str]]:
    lines, pids = [], []
    while len(pids) < wanted:
        line = proc.stdout.readline()
        assert line, "supervisor exited early: " + "".join(lines)
        lines.append(line)
        if " started (pid=" in line:
            pids.append(int(line.rsplit("pid=", 1)[1].rstrip(")\n")))
    return pids, lines


def test_sigint_stops_every_child():
    proc = _run_supervisor("exec sleep 302")
    pids, _ = _child_pids(proc, 3)
    assert all(_alive(p) for p in pids)
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out
    assert "DIED []" in out
    assert not [p for p in pids if _alive(p)]


def test_a_child_that_dies_is_reported_and_the_others_stopped():
    proc = _run_supervisor("sleep 0.5; echo oops; exit 3")
    pids, _ = _child_pids(proc, 3)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 1, out
    assert "three exited unexpectedly (rc=3)" in out and "DIED [('three', 3)]" in out
    assert not [p for p in pids if _alive(p)]
