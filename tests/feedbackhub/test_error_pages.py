"""403, 404 and 500 answer with the app's own pages, saying what happened and where to go."""

import pytest
from django.test import override_settings
from django.urls import path

from tests.conftest import _user


def _boom(request):
    raise RuntimeError("deliberate failure")


urlpatterns = [path("boom/", _boom)]


@pytest.mark.django_db
def test_403_names_the_reason_and_the_users_roles(client):
    client.force_login(_user("nobody"))
    response = client.get("/triage/")
    assert response.status_code == 403
    body = response.content.decode()
    assert "You cannot open this page" in body and "with no role yet" in body
    assert 'class="topbar"' in body  # the app's layout, not a bare "403 Forbidden"


@pytest.mark.django_db
def test_404_is_the_apps_page(client):
    client.force_login(_user("someone"))
    response = client.get("/review/c/999999999/")
    assert response.status_code == 404
    assert "There is nothing at this address" in response.content.decode()


@pytest.mark.django_db
@override_settings(ROOT_URLCONF=__name__, DEBUG=False)
def test_500_is_the_apps_page_without_touching_the_database(client):
    client.raise_request_exception = False
    client.force_login(_user("someone"))
    response = client.get("/boom/")
    assert response.status_code == 500
    assert "Something went wrong on our side" in response.content.decode()
