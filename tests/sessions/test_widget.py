"""The feedback widget's endpoints: the script, publishable keys with origins (CORS), limits, and what it stores."""

from __future__ import annotations

import gzip
import io
import json

import pytest
from django.core.management import call_command
from django.test import Client

from feedbackhub import widget_keys
from feedbackhub.models import WidgetKey
from sessions.models import Conversation, FeedbackEvent, FeedbackOrigin, Turn

ALLOWED = "https://app.example"
#: The widget's size budget (issue: at most 15 kB gzipped, no runtime dependency).
MAX_GZIPPED = 15 * 1024


@pytest.fixture
def key(db) -> WidgetKey:
    return widget_keys.widget_key_create(name="support web", source="support", origins=[ALLOWED + "/"],
                                         categories=["too vague", "wrong tone"], rate_per_minute=5)


@pytest.fixture
def conversation(db) -> Conversation:
    conv = Conversation.objects.create(source="support", external_id="c1", content_hash="x", turn_count=2)
    Turn.objects.create(conversation=conv, position=0, role="user", content="Refund?")
    Turn.objects.create(conversation=conv, position=1, role="assistant", content="30 days.")
    return conv


def _post(key: WidgetKey | str, body, origin: str = ALLOWED, **extra):
    value = key.key if isinstance(key, WidgetKey) else key
    return Client(enforce_csrf_checks=True).post(
        f"/widget/v1/feedback?key={value}", data=json.dumps(body), content_type="application/json",
        HTTP_ORIGIN=origin, **extra)


def test_the_script_is_small_and_gzipped(client):
    response = client.get("/widget/v1.js", HTTP_ACCEPT_ENCODING="gzip, br")
    assert response.status_code == 200
    assert response["Content-Encoding"] == "gzip" and "javascript" in response["Content-Type"]
    assert len(response.content) <= MAX_GZIPPED
    source = gzip.decompress(response.content).decode()
    assert "attachShadow" in source and "FeedbackHub" in source
    assert "import " not in source and "require(" not in source  # no third-party runtime
    assert client.get("/widget/v1.js").content.decode() == source


def test_config_answers_allowed_origins_only(client, key):
    response = client.get(f"/widget/v1/config?key={key.key}", HTTP_ORIGIN=ALLOWED)
    assert response.status_code == 200
    assert response["Access-Control-Allow-Origin"] == ALLOWED
    assert response.json() == {"source": "support", "categories": ["too vague", "wrong tone"]}
    refused = client.get(f"/widget/v1/config?key={key.key}", HTTP_ORIGIN="https://evil.example")
    assert refused.status_code == 403 and "Access-Control-Allow-Origin" not in refused
    assert client.get("/widget/v1/config?key=pk_nope", HTTP_ORIGIN=ALLOWED).status_code == 401


def test_preflight(client, key):
    response = client.options(f"/widget/v1/feedback?key={key.key}", HTTP_ORIGIN=ALLOWED,
                              HTTP_ACCESS_CONTROL_REQUEST_METHOD="POST")
    assert response.status_code == 204
    assert response["Access-Control-Allow-Origin"] == ALLOWED
    assert response["Access-Control-Allow-Headers"] == "Content-Type"
    refused = client.options(f"/widget/v1/feedback?key={key.key}", HTTP_ORIGIN="http://app.example")
    assert refused.status_code == 403 and "Access-Control-Allow-Origin" not in refused


def test_feedback_is_stored_for_the_keys_source_once(key, conversation):
    event = {"id": "w-1", "conversation": "c1", "turn": 1, "type": "thumbs_down", "categories": ["too vague"],
             "text": "Which country?"}
    first = _post(key, event)
    assert first.status_code == 201, first.content
    assert first["Access-Control-Allow-Origin"] == ALLOWED
    assert _post(key, event).json()["status"] == "duplicate"
    stored = FeedbackEvent.objects.get()
    assert stored.origin == FeedbackOrigin.WIDGET and stored.turn.position == 1
    assert stored.metadata["widget"] == {"key": "support web", "origin": ALLOWED}
    conversation.refresh_from_db()
    assert conversation.has_negative_feedback


def test_refusals_store_nothing(key, conversation):
    event = {"conversation": "c1", "turn": 1, "type": "thumbs_up"}
    assert _post(key, event, origin="https://evil.example").status_code == 403
    assert _post(key, event, origin="").status_code == 403
    assert _post(key, {**event, "source": "billing"}).status_code == 403
    assert _post(key, {**event, "conversation": "ghost"}).status_code == 404
    assert _post(key, {**event, "type": "love"}).status_code == 400
    widget_keys.widget_key_revoke(key_id=key.pk)
    assert _post(key, event).status_code == 401
    assert not FeedbackEvent.objects.exists()


def test_a_key_has_its_own_rate_limit(key, conversation):
    codes = [_post(key, {"conversation": "c1", "turn": 1, "type": "copy", "id": f"e{i}"}).status_code
             for i in range(6)]
    assert codes == [201] * 5 + [429]


def test_keys_need_valid_origins(db):
    with pytest.raises(Exception, match="not an origin"):
        widget_keys.widget_key_create(name="x", source="s", origins=["https://app.example/path"])
    assert widget_keys.clean_origin("HTTPS://App.Example:443/") == "https://app.example"
    assert widget_keys.clean_origin("http://localhost:8001") == "http://localhost:8001"


def test_create_widget_key_command(db):
    out, err = io.StringIO(), io.StringIO()
    call_command("create_widget_key", "shop", "--source", "shop", "--origin", "https://shop.example",
                 "--category", "wrong price", stdout=out, stderr=err)
    row = WidgetKey.objects.get()
    assert out.getvalue().strip() == row.key and row.key.startswith("pk_")
    assert row.categories == ["wrong price"] and row.origins == ["https://shop.example"]
    assert f'data-key="{row.key}"' in err.getvalue()


def test_admin_add_and_change_pages_with_the_preview(admin_client, key):
    response = admin_client.post("/admin/feedbackhub/widgetkey/add/", {
        "name": "docs site", "source": "docs", "origins": "https://docs.example, http://localhost:3000",
        "categories": "outdated,wrong link", "rate_per_minute": "60",
    })
    assert response.status_code == 302, response.content.decode()[:2000]
    row = WidgetKey.objects.get(name="docs site")
    assert row.key.startswith("pk_") and row.origins == ["http://localhost:3000", "https://docs.example"]
    page = admin_client.get(f"/admin/feedbackhub/widgetkey/{row.pk}/change/").content.decode()
    assert row.key in page and 'id="widget-preview"' in page and "/widget/v1.js" in page
    bad = admin_client.post("/admin/feedbackhub/widgetkey/add/", {
        "name": "bad", "source": "docs", "origins": "docs.example", "categories": "", "rate_per_minute": "60"})
    assert bad.status_code == 200 and "is not an origin" in bad.content.decode()
