"""`eventhub.lib.api.auth` finds the API key model through a setting, as Django finds the user model.
(The token exchange and authentication themselves are driven through the API in tests/handlers/test_api_auth.py.)"""

import pytest
from django.apps import apps
from django.core.exceptions import ImproperlyConfigured

from eventhub.lib.api.auth import get_api_key_model


def test_it_finds_the_api_key_model_its_setting_names():
    assert get_api_key_model() is apps.get_model("handlers", "ApiKey")


@pytest.mark.parametrize(("name", "problem"), [
    ("handlers.NoSuchKey", "has not been installed"), ("ApiKey", "of the form 'app_label.model_name'"),
])
def test_a_setting_naming_no_model_is_a_configuration_error(settings, name, problem):
    settings.EVENTHUB_API_KEY_MODEL = name
    with pytest.raises(ImproperlyConfigured, match=problem):
        get_api_key_model()
