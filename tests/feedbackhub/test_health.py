import pytest
from django.contrib.auth.models import User


@pytest.mark.django_db
def test_healthz_tells_anyone_only_the_status(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


@pytest.mark.django_db
def test_healthz_reports_real_database_and_redis_to_staff(client):
    client.force_login(User.objects.create_user("ops", is_staff=True))
    response = client.get("/healthz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["database"]["ok"] is True
    assert body["database"]["pgvector"]  # the extension is installed in every database
    assert body["redis"]["ok"] is True
    assert set(body) >= {"worker", "beat"}


@pytest.mark.django_db
def test_healthz_details_for_the_health_token_only(client, settings, moderator):
    settings.HEALTH_TOKEN = "probe-secret"
    assert "database" in client.get("/healthz", headers={"Authorization": "Bearer probe-secret"}).json()
    assert "database" in client.get("/healthz", headers={"X-Health-Token": "probe-secret"}).json()
    assert client.get("/healthz", headers={"Authorization": "Bearer wrong"}).json() == {"status": "ok"}
    assert client.get("/healthz", headers={"X-Health-Token": ""}).json() == {"status": "ok"}
    client.force_login(moderator)  # a role is not staff
    assert client.get("/healthz").json() == {"status": "ok"}


@pytest.mark.django_db
def test_healthz_without_a_configured_token_accepts_none(client, settings):
    settings.HEALTH_TOKEN = ""
    assert client.get("/healthz", headers={"Authorization": "Bearer "}).json() == {"status": "ok"}


@pytest.mark.django_db
def test_pages_require_login(client):
    response = client.get("/conversations/")
    assert response.status_code == 302
    assert response["Location"].startswith("/login/")


@pytest.mark.django_db
def test_roles_exist_as_groups():
    from django.contrib.auth.models import Group

    assert set(Group.objects.values_list("name", flat=True)) >= {
        "moderator",
        "domain_expert",
        "product_analyst",
        "admin",
    }
