"""Every page as every role, with the browser console open: no console error, no CSP violation, no page error, no
server error.

The demo data (conversations, reviews, corrections, a cut dataset version, triage clusters) is seeded, then each
role starts at the home page and follows the links it is shown, breadth first. Links that differ only in their
numbers (``/review/c/12/`` and ``/review/c/13/``) are one page shape; two of each shape are visited, so every kind
of page is opened, with and without query strings, while the crawl stays bounded.
"""

from __future__ import annotations

import re
from collections import Counter, deque
from urllib.parse import urldefrag, urlsplit

import pytest
from django.contrib.auth.models import User

from feedbackhub.demo import seeding
from tests.browser.conftest import PageProblems, _watch, login

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

ROLES = ["admin", "mod", "expert", "analyst", "nobody"]
PER_SHAPE = 2
MAX_PAGES = 60
#: Not pages: downloads, the JSON API, the admin's own app (Django's, with its own scripts), signing out.
SKIP = re.compile(r"^/(static|media|api|admin/.+|logout)|/export|\.(jsonl|csv|json|zip)$|download")


def _shape(path: str) -> str:
    return re.sub(r"\d+", "N", path)


def crawl(page, base: str) -> tuple[list[str], dict[str, list[str]], dict[str, int]]:
    """Visit what the role can reach from the home page; returns the visited paths, problems and statuses >= 500."""
    problems_by_page: dict[str, list[str]] = {}
    server_errors: dict[str, int] = {}
    seen: set[str] = set()
    shapes: Counter = Counter()
    queue = deque(["/"])
    visited: list[str] = []
    problems = PageProblems()
    _watch(page, problems)
    while queue and len(visited) < MAX_PAGES:
        path = queue.popleft()
        if path in seen:
            continue
        seen.add(path)
        shape = _shape(urlsplit(path).path) + ("?" if urlsplit(path).query else "")
        if shapes[shape] >= PER_SHAPE:
            continue
        shapes[shape] += 1
        problems.clear()
        response = page.goto(base + path)
        page.wait_for_load_state("load")
        visited.append(path)
        if response is not None and response.status >= 500:
            server_errors[path] = response.status
        for href in page.eval_on_selector_all(
            "a[href]:not([download])", "els => els.map(a => a.getAttribute('href'))"
        ):
            href = urldefrag(href)[0]
            if not href.startswith("/") or href.startswith("//") or SKIP.search(href):
                continue
            if href not in seen:
                queue.append(href)
        # Scripts run on load and htmx fragments load right after: give them a moment before reading the console
        # (a later error would be missed, never invented: the wait cannot make the test fail).
        page.wait_for_timeout(200)
        if problems:
            problems_by_page[path] = list(problems)
    return visited, problems_by_page, server_errors


@pytest.mark.parametrize("role", ROLES)
def test_every_page_as_every_role_has_no_console_error(role, browser, live_server, admin_user_factory):
    seeding.demo_seed(count=40, seed=5)
    admin_user_factory()
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    context.set_default_timeout(15_000)
    try:
        page = context.new_page()
        login(page, live_server.url, role)
        visited, problems, errors = crawl(page, live_server.url)
    finally:
        context.close()
    assert len(visited) >= (3 if role == "nobody" else 8), visited
    assert not errors, f"server errors as {role}: {errors}"
    assert not problems, f"browser problems as {role}: {problems}"


@pytest.fixture
def admin_user_factory(moderator, expert, analyst):
    def make() -> None:
        User.objects.create_superuser("admin", "admin@example.com", "pw-for-tests-only")
        User.objects.create_user("nobody", password="pw-for-tests-only")

    return make
