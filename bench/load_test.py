"""Load test: the production entry point (``manage.py serve``: gunicorn, DEBUG off) under a mixed load from Locust.

1. A database of its own (``feedbackhub_bench_load``) gets the demo set (300 conversations with feedback, review
comments, corrections), its feedback embedded, a reviewer login, a recall and ingest token and one comment per
simulated user to edit.
2. ``manage.py serve`` starts with its default worker count for this machine, and one Celery worker (all queues)
takes the embeddings of ingested feedback; both run on this machine, as does Locust itself, so the three share
its CPUs.
3. Locust (bench/load/locustfile.py) runs headless in steps of more simulated people, each step bounded in time:
browsing (conversation list, review pages, insights dashboard), review saves, recall API calls and the ingest API
(5 conversations, then a feedback event), each person waiting 1-2 s between actions. Per step and endpoint:
requests, errors, throughput and p50/p95/p99 as Locust measured them (client side: network, queueing and server
time).

The sustained rate is that of the busiest step with no error and every endpoint's p95 within its budget (BUDGET_MS:
100 ms for pages, saves and a feedback event, 150 ms for the recall API and an ingest batch; logins excluded); the
steps above it show where the machine saturates.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from bench import common

NAME = "load"
TITLE = "Load test: mixed traffic against manage.py serve (Locust)"
DB_NAME = "feedbackhub_bench_load"
USERNAME = "load-reviewer"
#: Simulated people per step, and seconds per step.
STEPS = [4, 8, 16, 32]
QUICK_STEPS = [2]
STEP_SECONDS = 45
QUICK_STEP_SECONDS = 10
#: p95 budgets (ms, as Locust sees them) per endpoint: the pages' server-time targets of docs/benchmarks.md plus a
#: margin for the client and the network on this machine; the APIs have their own.
BUDGET_MS = {
    "conversation list": 100, "review page": 100, "insights dashboard": 100, "review save": 100,
    "recall API": 150, "ingest API (5 conversations)": 150, "feedback API (1 event)": 100, "login": 1000,
}
SEED_COMMENTS = 64


def seed(db_url: str) -> dict[str, Any]:
    """(In a child process.) Demo data, embedded; a reviewer with a password; a recall token; comments to edit."""
    common.setup_django(db_url)
    from django.contrib.auth.models import Group, User  # noqa: PLC0415
    from django.core.management import call_command  # noqa: PLC0415

    from annotations import services  # noqa: PLC0415
    from annotations.models import Annotation  # noqa: PLC0415
    from annotations.recall import embedding  # noqa: PLC0415
    from feedbackhub import auth_tokens, roles  # noqa: PLC0415
    from feedbackhub.demo import seeding  # noqa: PLC0415
    from feedbackhub.models import ApiToken  # noqa: PLC0415
    from sessions.models import Conversation, Turn, TurnRole  # noqa: PLC0415

    if seeding.database_is_empty():
        call_command("seed_demo")
    embedding.embeddings_embed_pending()
    user, _ = User.objects.get_or_create(username=USERNAME)
    password = "load-" + os.urandom(8).hex()
    user.set_password(password)
    user.save()
    for role in (roles.DOMAIN_EXPERT, roles.MODERATOR):
        user.groups.add(Group.objects.get_or_create(name=role)[0])
    ApiToken.objects.filter(name="load-test").delete()
    _, token = auth_tokens.api_token_create(name="load-test", scopes=["recall", "ingest"], all_sources=True,
                                            gate="approved")
    conversations = list(Conversation.objects.order_by("pk").values_list("pk", flat=True)[:200])
    reply = Turn.objects.filter(role=TurnRole.ASSISTANT).order_by("pk").first()
    Annotation.objects.filter(author=user).delete()
    comments = [services.annotation_create(actor=user, turn=reply, body=f"load comment {n}").pk
                for n in range(SEED_COMMENTS)]
    queries = list(Turn.objects.filter(role=TurnRole.USER).values_list("content", flat=True)[:100])
    return {"username": USERNAME, "password": password, "token": token, "conversations": conversations,
            "annotations": comments, "queries": [q[:300] for q in queries]}


def _stats(prefix: Path) -> dict[str, dict[str, float]]:
    rows = {}
    with open(f"{prefix}_stats.csv", newline="") as fh:
        for row in csv.DictReader(fh):
            rows[row["Name"]] = {
                "requests": int(row["Request Count"]), "failures": int(row["Failure Count"]),
                "rps": float(row["Requests/s"]), "p50": float(row["50%"] or 0), "p95": float(row["95%"] or 0),
                "p99": float(row["99%"] or 0),
            }
    return rows


def run(ctx: common.Context) -> dict[str, Any]:
    base = common.database_url(quick=False)
    db_url = base.rsplit("/", 1)[0] + "/" + DB_NAME + (common.QUICK_DB_SUFFIX if ctx.quick else "")
    work = ctx.work_dir / "load"
    work.mkdir(parents=True, exist_ok=True)
    common.migrate(db_url)
    env = common.serve_environment(db_url, work)
    ctx.log("seeding the load-test database (demo set, embeddings, a reviewer, a token)")
    seeded = subprocess.run([sys.executable, "-m", "bench.load_test", "--seed", db_url], env=env,
                            cwd=common.BASE_DIR, capture_output=True, text=True, check=True)
    data = json.loads(seeded.stdout.strip().splitlines()[-1])
    port = common.free_port()
    url = f"http://127.0.0.1:{port}"
    log = open(work / "serve.log", "w")  # noqa: SIM115 (closed in finally)
    server = subprocess.Popen([sys.executable, "manage.py", "serve", "--bind", f"127.0.0.1:{port}"], env=env,
                              cwd=common.BASE_DIR, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    worker = subprocess.Popen([sys.executable, "-m", "celery", "-A", "feedbackhub", "worker", "--concurrency=1",
                               "-Q", "import,embed,cluster,export,default", "--loglevel=WARNING",
                               "-n", f"load-{os.getpid()}@%h"], env=env, cwd=common.BASE_DIR, stdout=log,
                              stderr=subprocess.STDOUT, start_new_session=True)
    steps: list[dict[str, Any]] = []
    try:
        common.wait_ready(url, server)
        workers = os.cpu_count() or 1
        locust_env = {**env, "LOAD_USERNAME": data["username"], "LOAD_PASSWORD": data["password"],
                      "LOAD_TOKEN": data["token"], "LOAD_CONVERSATIONS": ",".join(map(str, data["conversations"])),
                      "LOAD_ANNOTATIONS": ",".join(map(str, data["annotations"])),
                      "LOAD_QUERIES": json.dumps(data["queries"])}
        seconds = QUICK_STEP_SECONDS if ctx.quick else STEP_SECONDS
        # An untimed first step: every web worker compiles its templates and fills its caches.
        for users in [0, *(QUICK_STEPS if ctx.quick else STEPS)]:
            prefix = work / f"step-{users}"
            warm_up = users == 0
            users = users or 4
            ctx.log(f"{'warm-up' if warm_up else 'step'}: {users} simulated people for {seconds} s")
            subprocess.run([sys.executable, "-m", "locust", "-f", str(common.BASE_DIR / "bench/load/locustfile.py"),
                            "--headless", "--users", str(users), "--spawn-rate", str(users), "--run-time",
                            f"{seconds}s", "--host", url, "--csv", str(prefix), "--only-summary",
                            "--loglevel", "WARNING", "--stop-timeout", "10"],
                           env=locust_env, cwd=common.BASE_DIR, capture_output=True, text=True, timeout=seconds + 120)
            if warm_up:
                continue
            stats = _stats(prefix)
            total = stats.pop("Aggregated")
            # Logging in (once per person, a deliberately slow password hash) is not part of the sustained mix.
            over = [name for name, s in stats.items() if name != "login" and s["p95"] > BUDGET_MS.get(name, 100)]
            steps.append({"users": users, "total": total, "endpoints": stats, "over_budget": over})
    finally:
        for proc in (server, worker):
            if proc.poll() is None:
                os.killpg(proc.pid, 15)
                proc.wait(timeout=60)
        log.close()
    good = [s for s in steps if s["total"]["failures"] == 0 and not s["over_budget"]]
    sustained = good[-1] if good else None
    rows = []
    for step in steps:
        for name, s in sorted(step["endpoints"].items()):
            rows.append([step["users"], name, s["requests"], s["failures"], f"{s['rps']:.1f}", f"{s['p50']:.0f}",
                         f"{s['p95']:.0f}", f"{s['p99']:.0f}", f"{BUDGET_MS.get(name, 100)}"])
        t = step["total"]
        rows.append([step["users"], "**all**", t["requests"], t["failures"], f"{t['rps']:.1f}", f"{t['p50']:.0f}",
                     f"{t['p95']:.0f}", f"{t['p99']:.0f}", "-"])
    errors = sum(s["total"]["failures"] for s in steps)
    verdicts = [
        {"name": "Sustained rate: busiest step with 0 errors and every p95 within budget",
         "target": "> 0 req/s", "value": sustained["total"]["rps"] if sustained else 0.0,
         "measured": (f"{sustained['total']['rps']:.1f} req/s ({sustained['users']} people)" if sustained
                      else "no step met the budgets"), "pass": sustained is not None},
        {"name": "Errors at the sustained rate", "target": "0",
         "measured": str(sustained["total"]["failures"] if sustained else "-"), "value": 0,
         "pass": sustained is not None and sustained["total"]["failures"] == 0},
        {"name": "Errors over all steps (informative: the top steps overload the machine on purpose)",
         "target": "-", "measured": str(errors), "value": errors, "pass": None},
    ]
    return {
        "name": NAME, "title": TITLE, "quick": ctx.quick, "repeats": 1, "verdicts": verdicts,
        "tables": [{"title": "Per step and endpoint (Locust, client side, ms)",
                    "columns": ["people", "endpoint", "requests", "errors", "req/s", "p50", "p95", "p99",
                                "p95 budget"],
                    "rows": rows}],
        "notes": [
            f"Web: `manage.py serve` with its default {2 * workers + 1} gunicorn workers ({workers} CPUs); one Celery "
            "worker on all queues; Locust on the same machine: the three share its CPUs, so these are lower bounds "
            "for a web host of its own.",
            f"Each step lasts {seconds} s after every simulated person has started; each waits 1-2 s between "
            "actions, so the offered rate is about 0.67 requests per person per second.",
            "Budgets: the page targets of this file (server time) plus a client/network margin; the sustained rate is "
            "the busiest step meeting all of them with no error.",
        ],
        "steps": steps,
    }


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--seed":
        print(json.dumps(seed(sys.argv[2])))
