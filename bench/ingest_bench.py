"""Live ingest: the ingest API against the file import on the same records, single feedback events, OTLP spans, and
the widget's size.

Everything runs in one child process on a database of its own (``feedbackhub_bench_ingest``), DEBUG off, through
Django's test client with a bearer token (token check, rate limit, body, validation, merge, JSON answer):

1. The same generated native conversations (bench.datagen, about 10 turns each) go in twice per repeat, into emptied
   tables: as one JSONL file through ``sessions.services.import_file`` (the file import), and as
   ``POST /api/v1/conversations`` in batches of 500. The order alternates between repeats; rates are turns stored per
   second of wall time, and the ratio is taken within a repeat, so both sides see the same machine load.
2. Single end-user feedback events (``POST /api/v1/feedback``, one event per request, a new id each) on random turns
   of the stored conversations: server time per request.
3. OpenTelemetry GenAI chat spans (protobuf ``ExportTraceServiceRequest``, gzip off) sent to ``POST /v1/traces`` in
   exports of 500 spans, a conversation's spans spread over several exports as an app's exporter sends them (each
   export after the first extends conversations already stored): spans per second of wall time.
4. The widget script's size, gzipped as the app serves it.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import psycopg

from bench import common, datagen, import_bench

NAME = "ingest"
TITLE = "Live ingest: API, feedback events, OTLP, widget"
DB_NAME = "feedbackhub_bench_ingest"
FULL_CONVERSATIONS, QUICK_CONVERSATIONS = 10_000, 1_000
BATCH = 500
FULL_EVENTS, QUICK_EVENTS = 500, 60
FULL_SPAN_CONVERSATIONS, QUICK_SPAN_CONVERSATIONS = 2_000, 200
TURNS_PER_CONVERSATION = 5
SPANS_PER_EXPORT = 500
WARMUP = 20
#: Exporters sending at once to the served receiver (an app's instances, or one exporter's parallel exports).
EXPORTERS = 4
SERVE_WARMUP_EXPORTS = 12
TARGET_RATIO = 0.5
TARGET_FEEDBACK_P95_MS = 15.0
TARGET_SPANS_PER_S = 5_000
WIDGET_LIMIT_BYTES = 15 * 1024


def _span_exports(n_conversations: int, *, agent: bool, instances: int = 1) -> tuple[list[list[bytes]], int]:
    """Protobuf exports of a chat app's spans, in time order: each conversation's k-th turn after every
    conversation's (k-1)-th, so most exports extend conversations an earlier one created. ``agent``: each turn is a
    small agent run, as GenAI instrumentations report it (a model call that asks for a tool, the tool's
    ``execute_tool`` span without a conversation id, the model call that answers: one trace, one export); otherwise
    a turn is one model call. ``instances``: the app runs as that many instances, each serving its share of the
    conversations and exporting its own spans. Returns each instance's exports and the number of spans."""
    rng = random.Random(5)
    base = 1_760_000_000_000_000_000
    spans: list[tuple[int, int, int, dict[str, Any]]] = []  # conversation, turn, step, attributes
    for k in range(TURNS_PER_CONVERSATION):
        for c in range(n_conversations):
            history = []
            for j in range(k + 1):
                history.append({"role": "user", "parts": [{"type": "text", "content": f"Question {j} of chat {c}?"}]})
                if j < k:
                    history.append({"role": "assistant", "parts": [{"type": "text", "content": f"Answer {j}."}]})
            answer = [{"role": "assistant", "parts": [
                {"type": "text", "content": f"Answer {k}: " + "lorem ipsum " * rng.randint(5, 40)}]}]
            chat = {"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai", "gen_ai.request.model": "gpt-4o",
                    "gen_ai.response.model": "gpt-4o-2024-08-06", "gen_ai.conversation.id": f"chat-{c}",
                    "gen_ai.input.messages": json.dumps(history)}
            if not agent:
                spans.append((c, k, 0, {**chat, "gen_ai.output.messages": json.dumps(answer)}))
                continue
            call = {"role": "assistant", "parts": [{"type": "tool_call", "id": f"call-{c}-{k}", "name": "search",
                                                    "arguments": {"q": f"question {k}"}}]}
            result = {"role": "tool", "parts": [{"type": "tool_call_response", "id": f"call-{c}-{k}",
                                                 "response": "three documents"}]}
            spans.append((c, k, 0, {**chat, "gen_ai.output.messages": json.dumps([call])}))
            tool = {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "search",
                    "gen_ai.tool.call.id": f"call-{c}-{k}", "gen_ai.tool.call.result": "three documents"}
            spans.append((c, k, 1, tool))
            spans.append((c, k, 2, {**chat, "gen_ai.input.messages": json.dumps([*history, call, result]),
                                    "gen_ai.output.messages": json.dumps(answer)}))
    streams = []
    for instance in range(instances):
        mine = [span for span in spans if span[0] % instances == instance]
        streams.append([_export(mine[i: i + SPANS_PER_EXPORT], rng, base)
                        for i in range(0, len(mine), SPANS_PER_EXPORT)])
    return streams, len(spans)


def _export(spans: list[tuple[int, int, int, dict[str, Any]]], rng: random.Random, base: int) -> bytes:
    from opentelemetry.proto.collector.trace.v1 import trace_service_pb2  # noqa: PLC0415

    request = trace_service_pb2.ExportTraceServiceRequest()
    rs = request.resource_spans.add()
    rs.resource.attributes.add(key="service.name").value.string_value = "bench-otlp"
    scope = rs.scope_spans.add()
    for c, k, step, attributes in spans:
        # A user's next question comes a minute after the last answer; the chats run side by side.
        start = base + k * 60_000_000_000 + c * 1_000_000 + step * 400_000_000
        s = scope.spans.add()
        s.trace_id = (c * 100 + k).to_bytes(16, "big")
        s.span_id = (c * 1000 + k * 10 + step + 1).to_bytes(8, "big")
        s.name = attributes["gen_ai.operation.name"]
        s.start_time_unix_nano, s.end_time_unix_nano = start, start + rng.randint(100, 390) * 1_000_000
        for key, value in attributes.items():
            s.attributes.add(key=key).value.string_value = value
        if step != 1:
            s.attributes.add(key="gen_ai.usage.input_tokens").value.int_value = 20 * (k + 1)
            s.attributes.add(key="gen_ai.usage.output_tokens").value.int_value = rng.randint(10, 200)
    return request.SerializeToString()


def measure(db_url: str, quick: bool, repeats: int, work_dir: Path) -> dict[str, Any]:
    """The child process: every measurement, as JSON-able numbers."""
    common.setup_django(db_url)
    import gzip  # noqa: PLC0415

    from django.contrib.staticfiles import finders  # noqa: PLC0415
    from django.test import Client  # noqa: PLC0415

    from feedbackhub import auth_tokens  # noqa: PLC0415
    from sessions.models import Conversation, Turn  # noqa: PLC0415
    from sessions.services import import_file  # noqa: PLC0415

    n = QUICK_CONVERSATIONS if quick else FULL_CONVERSATIONS
    path, stats = datagen.cached_file(work_dir, n)
    records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    source = records[0].get("source") or "bench"
    _, token = auth_tokens.api_token_create(name="bench ingest", scopes=["ingest"], all_sources=True)
    client = Client()
    auth = {"HTTP_AUTHORIZATION": f"Bearer {token}"}
    from django.conf import settings  # noqa: PLC0415

    settings.INGEST_RATE_PER_MINUTE = 10**9  # the benchmark measures the work, not the limit

    def via_file() -> tuple[float, int]:
        import_bench.reset(db_url)
        t = time.perf_counter()
        batch = import_file(path=path, source=source)
        return time.perf_counter() - t, batch.turns_written

    def via_api() -> tuple[float, int]:
        import_bench.reset(db_url)
        bodies = [json.dumps({"source": source, "conversations": records[i: i + BATCH]})
                  for i in range(0, len(records), BATCH)]
        t = time.perf_counter()
        for body in bodies:
            response = client.post("/api/v1/conversations", body, content_type="application/json", **auth)
            assert response.status_code == 200, response.content[:300]
            assert "rejected" not in response.json()["counts"], response.json()["counts"]
        return time.perf_counter() - t, Turn.objects.count()

    rounds = []
    for r in range(repeats):
        order = [("file", via_file), ("api", via_api)]
        if r % 2:
            order.reverse()
        got = {}
        for name, step in order:
            seconds, turns = step()
            got[name] = {"seconds": seconds, "turns": turns, "turns_per_s": turns / seconds}
        got["ratio"] = got["api"]["turns_per_s"] / got["file"]["turns_per_s"]
        rounds.append(got)

    # Single feedback events on the stored conversations (the last step left them from one of the two paths).
    rng = random.Random(9)
    convs = list(Conversation.objects.values_list("external_id", "turn_count")[:5000])
    events = QUICK_EVENTS if quick else FULL_EVENTS
    feedback_ms = []
    for i in range(events + WARMUP):
        external_id, turn_count = rng.choice(convs)
        body = json.dumps({"conversation": external_id, "source": source, "turn": rng.randrange(turn_count),
                           "id": f"bench-{i}", "type": rng.choice(["thumbs_down", "thumbs_up", "copy"]),
                           "text": "The answer missed the point." if i % 3 == 0 else ""})
        t = time.perf_counter()
        response = client.post("/api/v1/feedback", body, content_type="application/json", **auth)
        elapsed = (time.perf_counter() - t) * 1000
        assert response.status_code == 201, response.content[:300]
        if i >= WARMUP:
            feedback_ms.append(elapsed)

    # OTLP spans: the agent workload (the target), then one model call per turn (informative).
    otlp = {}
    for workload, agent in (("agent", True), ("single", False)):
        import_bench.reset(db_url)
        streams, span_count = _span_exports(QUICK_SPAN_CONVERSATIONS if quick else FULL_SPAN_CONVERSATIONS,
                                            agent=agent)
        exports = streams[0]
        export_ms = []
        t0 = time.perf_counter()
        for body in exports:
            t = time.perf_counter()
            response = client.post("/v1/traces", body, content_type="application/x-protobuf", **auth)
            export_ms.append((time.perf_counter() - t) * 1000)
            assert response.status_code == 200, response.content[:300]
        otlp[workload] = {"spans": span_count, "exports": len(exports), "export_ms": export_ms,
                          "seconds": time.perf_counter() - t0, "turns": Turn.objects.count(),
                          "conversations": Conversation.objects.count()}

    script = Path(finders.find("widget/v1.js") or "").read_bytes()
    return {
        "token": token,
        "conversations": len(records), "file_stats": stats, "rounds": rounds,
        "feedback_ms": feedback_ms, "otlp": otlp,
        "widget_bytes": len(script), "widget_gzip_bytes": len(gzip.compress(script, compresslevel=9, mtime=0)),
    }


def run(ctx: common.Context) -> dict[str, Any]:
    base = common.database_url(quick=False)
    db_url = base.rsplit("/", 1)[0] + "/" + DB_NAME + (common.QUICK_DB_SUFFIX if ctx.quick else "")
    ctx.log(f"ingest benchmark on {db_url.rsplit('/', 1)[-1]}")
    common.migrate(db_url)
    ctx.work_dir.mkdir(parents=True, exist_ok=True)
    args = [sys.executable, "-m", "bench.ingest_bench", "--measure", db_url, "--repeats", str(ctx.repeats),
            "--work-dir", str(ctx.work_dir)] + (["--quick"] if ctx.quick else [])
    proc = subprocess.run(args, env=common.bench_environment(db_url), cwd=common.BASE_DIR, capture_output=True,
                          text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"the ingest benchmark's child failed:\n{proc.stderr[-4000:]}")
    data = json.loads(proc.stdout.strip().splitlines()[-1])
    data["otlp"]["served"] = served_otlp(ctx, db_url, data.pop("token"))
    return summarise(ctx, data)


def served_otlp(ctx: common.Context, db_url: str, token: str) -> dict[str, Any]:
    """The agent workload again, sent over HTTP to ``manage.py serve`` (gunicorn, its default workers for this
    machine) by ``EXPORTERS`` exporters at once, as a deployment receives it."""
    import requests  # noqa: PLC0415

    work = ctx.work_dir / "ingest-serve"
    work.mkdir(parents=True, exist_ok=True)
    env = {**common.serve_environment(db_url, work), "INGEST_RATE_PER_MINUTE": str(10**9), "RECALL_WARMUP": "0"}
    import_bench.reset(db_url)
    streams, span_count = _span_exports(QUICK_SPAN_CONVERSATIONS if ctx.quick else FULL_SPAN_CONVERSATIONS,
                                        agent=True, instances=EXPORTERS)
    port = common.free_port()
    url = f"http://127.0.0.1:{port}"
    ctx.log(f"OTLP over HTTP: manage.py serve on port {port}, {EXPORTERS} exporters")
    with open(work / "serve.log", "w") as log:
        server = subprocess.Popen([sys.executable, "manage.py", "serve", "--bind", f"127.0.0.1:{port}"], env=env,
                                  cwd=common.BASE_DIR, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            common.wait_ready(url, server)
            session = requests.Session()
            headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/x-protobuf"}

            def send(body: bytes) -> float:
                t = time.perf_counter()
                response = session.post(f"{url}/v1/traces", data=body, headers=headers, timeout=120)
                response.raise_for_status()
                return (time.perf_counter() - t) * 1000

            # Untimed: every web worker's first requests import the receiver's modules and open its connections.
            with ThreadPoolExecutor(EXPORTERS) as pool:
                list(pool.map(send, [stream[0] for stream in streams] * (SERVE_WARMUP_EXPORTS // EXPORTERS)))
            import_bench.reset(db_url)
            # Each exporter is one app instance with its own share of the conversations, sending its exports one
            # after another (as a BatchSpanProcessor does); the instances send at the same time.
            t0 = time.perf_counter()
            with ThreadPoolExecutor(EXPORTERS) as pool:
                export_ms = [ms for stream in pool.map(lambda s: [send(b) for b in s], streams) for ms in stream]
            seconds = time.perf_counter() - t0
        finally:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=60)
    with psycopg.connect(db_url) as conn:
        turns, conversations = conn.execute(
            "SELECT (SELECT count(*) FROM conversations_turn), (SELECT count(*) FROM conversations_conversation)"
        ).fetchone()
    return {"spans": span_count, "exports": sum(map(len, streams)), "export_ms": export_ms, "seconds": seconds,
            "exporters": EXPORTERS, "turns": turns, "conversations": conversations}


def summarise(ctx: common.Context, data: dict[str, Any]) -> dict[str, Any]:
    rounds = data["rounds"]
    ratio = common.median([r["ratio"] for r in rounds])
    feedback_p95 = common.percentile(data["feedback_ms"], 95)
    agent, single, served = data["otlp"]["agent"], data["otlp"]["single"], data["otlp"]["served"]
    spans_per_s = agent["spans"] / agent["seconds"]
    served_per_s = served["spans"] / served["seconds"]
    # Exports sent at once store what one client sending them in order stores.
    same = (served["turns"], served["conversations"]) == (agent["turns"], agent["conversations"])
    single_per_s = single["spans"] / single["seconds"]
    gz = data["widget_gzip_bytes"]
    rows = []
    for i, r in enumerate(rounds, start=1):
        for name in ("file", "api"):
            step = r[name]
            rows.append([i, "file import (one JSONL file)" if name == "file" else f"ingest API ({BATCH} a request)",
                         f"{step['turns']:,}", f"{step['seconds']:.2f}", f"{step['turns_per_s']:,.0f}"])
        rows.append([i, "ratio API / file", "", "", f"{r['ratio']:.2f}"])
    return {
        "name": NAME,
        "title": TITLE,
        "quick": ctx.quick,
        "repeats": ctx.repeats,
        "verdicts": [
            {"name": f"Ingest API turns/s against the file import, same {data['conversations']:,} conversations "
                     f"(median of {len(rounds)} repeats)", "target": f">= {TARGET_RATIO}x",
             "measured": f"{ratio:.2f}x", "value": ratio, "pass": ratio >= TARGET_RATIO},
            {"name": "Single feedback event, server time p95", "target": f"<= {TARGET_FEEDBACK_P95_MS:.0f} ms",
             "measured": f"{feedback_p95:.1f} ms", "value": feedback_p95,
             "pass": feedback_p95 <= TARGET_FEEDBACK_P95_MS},
            {"name": f"OTLP GenAI spans ingested by the server (manage.py serve, {served['exporters']} exporters at "
                     f"once), agent turns ({served['spans']:,} spans, exports of {SPANS_PER_EXPORT})",
             "target": f">= {TARGET_SPANS_PER_S:,} spans/s", "measured": f"{served_per_s:,.0f} spans/s",
             "value": served_per_s, "pass": served_per_s >= TARGET_SPANS_PER_S and same},
            {"name": "OTLP, the same through one in-process client, one export at a time (informative)",
             "target": "-", "measured": f"{spans_per_s:,.0f} spans/s", "value": spans_per_s, "pass": None},
            {"name": f"OTLP, one model call per turn ({single['spans']:,} spans: every span extends another "
                     "conversation; informative)", "target": "-", "measured": f"{single_per_s:,.0f} spans/s",
             "value": single_per_s, "pass": None},
            {"name": "Widget script, gzipped", "target": f"<= {WIDGET_LIMIT_BYTES // 1024} kB",
             "measured": f"{gz / 1024:.1f} kB ({data['widget_bytes'] / 1024:.1f} kB plain)", "value": gz,
             "pass": gz <= WIDGET_LIMIT_BYTES},
        ],
        "tables": [
            {"title": "Conversations: the file import and the ingest API on the same records",
             "columns": ["repeat", "path", "turns", "seconds", "turns/s"], "rows": rows},
            {"title": "Requests (ms, server time through the test client)",
             "columns": ["request", "n", "p50", "p95", "max"],
             "rows": [
                 ["POST /api/v1/feedback (one event)", len(data["feedback_ms"]),
                  f"{common.percentile(data['feedback_ms'], 50):.1f}", f"{feedback_p95:.1f}",
                  f"{max(data['feedback_ms']):.1f}"],
                 *([f"POST /v1/traces ({SPANS_PER_EXPORT} spans, protobuf, {name})", len(run["export_ms"]),
                    f"{common.percentile(run['export_ms'], 50):.1f}", f"{common.percentile(run['export_ms'], 95):.1f}",
                    f"{max(run['export_ms']):.1f}"] for name, run in data["otlp"].items()),
             ]},
        ],
        "notes": [
            f"Records: bench.datagen, {data['conversations']:,} native conversations "
            f"({data['file_stats'].get('turns', 0):,} turns); the API sends them in batches of {BATCH} "
            "(`{\"conversations\": [...]}`), each batch one ImportBatch, merged by the same Loader as the file.",
            "Feedback events: one per request, a new id each, on random turns of the stored conversations; the answer "
            "is 201 after the event, the conversation's feedback summary and the recall task's enqueue are committed.",
            f"OTLP agent turns: {agent['conversations']:,} conversations x {TURNS_PER_CONVERSATION} turns, each turn "
            "a model call asking for a tool, the execute_tool span (no conversation id: it joins by its trace), the "
            f"model call answering; {agent['spans']:,} spans in {agent['exports']} exports, {agent['turns']:,} turns "
            "stored. Each export after the first extends conversations stored by an earlier one: their new turns are "
            "appended (sessions.ingest.services.conversations_append), nothing stored is rewritten.",
            f"OTLP served: the agent workload over HTTP to manage.py serve (gunicorn, its default worker count "
            f"here) from {served['exporters']} exporters at once, after untimed warm-up exports; it stored "
            f"{served['turns']:,} turns in {served['conversations']:,} conversations, "
            f"{'as' if same else 'NOT as'} the in-process run did. Server, exporters and PostgreSQL share the 2 cores.",
            f"OTLP one model call per turn: {single['spans']:,} spans, {single['turns']:,} turns; the worst case, "
            "where each span is a separate conversation's update.",
        ],
        "data": data,
    }


def main(argv: list[str] | None = None) -> int:
    import argparse  # noqa: PLC0415

    parser = argparse.ArgumentParser()
    parser.add_argument("--measure", required=True)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--work-dir", required=True)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    result = measure(args.measure, args.quick, args.repeats, Path(args.work_dir))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
