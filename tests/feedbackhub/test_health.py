import pytest


@pytest.mark.django_db
def test_healthz_reports_real_database_and_redis(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    body = response.json()
    assert body["database"]["ok"] is True
    assert body["database"]["pgvector"]  # the extension is installed in every database
    assert body["redis"]["ok"] is True
    assert set(body) >= {"worker", "beat"}


@pytest.mark.django_db
def test_pages_require_login(client):
    response = client.get("/conversations/")
    assert response.status_code == 302
    assert response["Location"].startswith("/login/")


@pytest.mark.django_db
def test_roles_exist_as_groups():
    from django.contrib.auth.models import Group

    assert set(Group.objects.values_list("name", flat=True)) >= {
        "moderator", "domain_expert", "product_analyst", "admin"
    }
