"""The load test's users (Locust), run by bench/load_test.py against ``manage.py serve``.

A mix of what FeedbackHub's people and apps do at once: moderators and experts browse the conversation list, open
review pages and the insights dashboard, and save comments (htmx POSTs with the CSRF token); the LLM app asks the
recall API and sends conversations and end-user feedback through the ingest API. Weights: list 4, review page 4,
save 2, recall 3, dashboard 1, ingest 1. Each simulated person waits 1-2 s between actions (the offered rate grows
with the number of users).

Everything the users need comes from the environment (bench/load_test.py seeds it): LOAD_USERNAME, LOAD_PASSWORD,
LOAD_TOKEN (recall and ingest scopes), LOAD_CONVERSATIONS (ids, comma-separated), LOAD_ANNOTATIONS (ids of comments
the load user owns, one per simulated user), LOAD_QUERIES (a JSON list of recall inputs).
"""

from __future__ import annotations

import itertools
import json
import os
import random
import re

from locust import HttpUser, between, task

CSRF_INPUT = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')
_annotations = itertools.cycle(int(a) for a in os.environ.get("LOAD_ANNOTATIONS", "0").split(","))
_batch_numbers = itertools.count()


class Reviewer(HttpUser):
    wait_time = between(1, 2)

    def on_start(self) -> None:
        self.conversations = [int(c) for c in os.environ["LOAD_CONVERSATIONS"].split(",")]
        self.queries = json.loads(os.environ["LOAD_QUERIES"])
        self.annotation = next(_annotations)
        self.version = None
        page = self.client.get("/login/", name="login")
        csrf = CSRF_INPUT.search(page.text).group(1)
        self.client.post("/login/", name="login", allow_redirects=False,
                         data={"username": os.environ["LOAD_USERNAME"], "password": os.environ["LOAD_PASSWORD"],
                               "csrfmiddlewaretoken": csrf}, headers={"Referer": self.host + "/login/"})

    def _htmx_headers(self) -> dict[str, str]:
        return {"HX-Request": "true", "X-CSRFToken": self.client.cookies.get("csrftoken", ""),
                "Referer": self.host + "/"}

    @task(4)
    def conversation_list(self) -> None:
        self.client.get("/conversations/", name="conversation list")

    @task(4)
    def review_page(self) -> None:
        self.client.get(f"/review/c/{random.choice(self.conversations)}/", name="review page")  # noqa: S311

    @task(1)
    def dashboard(self) -> None:
        self.client.get("/insights/", name="insights dashboard")

    @task(2)
    def review_save(self) -> None:
        if self.version is None:
            self.version = int(os.environ.get("LOAD_ANNOTATION_VERSION", "1"))
        with self.client.post(f"/review/a/{self.annotation}/edit", name="review save", catch_response=True,
                              data={"version": self.version, "body": f"checked under load {self.version}"},
                              headers=self._htmx_headers()) as response:
            if response.status_code == 200:
                self.version += 1
            elif response.status_code == 409:
                # Another simulated user shares this comment (more users than seeded comments): catch up.
                self.version += 1
                response.success()

    @task(3)
    def recall(self) -> None:
        self.client.post("/api/v1/recall", name="recall API", headers={
            "Authorization": f"Bearer {os.environ['LOAD_TOKEN']}"},
            json={"input": random.choice(self.queries), "k": 3})  # noqa: S311

    @task(1)
    def ingest(self) -> None:
        """The LLM app sends 5 new conversations through the ingest API, then an end user's thumbs down on one."""
        n = next(_batch_numbers)
        auth = {"Authorization": f"Bearer {os.environ['LOAD_TOKEN']}"}
        records = [{"id": f"load-{os.getpid()}-{n}-{i}", "turns": [
            {"role": "user", "content": f"Load test question {n}-{i}"},
            {"role": "assistant", "content": f"Load test answer {n}-{i}"}]} for i in range(5)]
        self.client.post("/api/v1/conversations", name="ingest API (5 conversations)", headers=auth,
                         json={"source": "load-test", "conversations": records})
        self.client.post("/api/v1/feedback", name="feedback API (1 event)", headers=auth, json={
            "source": "load-test", "conversation": records[0]["id"], "turn": 1, "id": f"load-fb-{os.getpid()}-{n}",
            "type": "thumbs_down", "text": f"not helpful {n}"})
