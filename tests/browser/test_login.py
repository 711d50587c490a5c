import pytest

from tests.browser.conftest import login

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_login_page_loads_under_enforced_csp(page, live_server, moderator):
    response = page.goto(f"{live_server.url}/login/")
    csp = response.headers.get("content-security-policy", "")
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "unsafe-eval" not in csp
    login(page, live_server.url, "mod")
    assert page.url.endswith("/conversations/")
    # htmx loaded from our own static files and configured without eval.
    assert page.evaluate("() => window.htmx && htmx.config.allowEval === false && htmx.config.selfRequestsOnly")
