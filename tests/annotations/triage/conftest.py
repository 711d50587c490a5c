import pytest

from tests.conftest import _user


@pytest.fixture
def moderator2(db):
    from feedbackhub import roles

    return _user("mod2", roles.MODERATOR)
