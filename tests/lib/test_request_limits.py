"""Limits at the door: a body over REQUEST_MAX_BYTES is a 413 and JSON nested deeper than the records hold
a 400, on every route, with credentials or without, never a 500."""

import json

import pytest
from django.test import Client
from rest_framework.test import APIClient

pytestmark = pytest.mark.django_db
MIB = 1024 * 1024


def big_json(size: int) -> str:
    return json.dumps({"name": "big", "padding": "x" * size})


def nested(levels: int) -> str:
    return "[" * levels + "]" * levels


@pytest.mark.parametrize("path", ["/api/event", "/api/token", "/api/eventhub/handlers/dry-run",
                                  "/api/metadata/workflow"])
def test_a_body_over_the_limit_is_a_413_in_conductors_shape_even_without_credentials(path, api):
    for client in (APIClient(), api):
        response = client.post(path, data=big_json(MIB + 10), content_type="application/json")
        assert response.status_code == 413
        body = response.json()
        assert (body["status"], body["retryable"]) == (413, False)
        assert "at most 1048576 are accepted (REQUEST_MAX_BYTES)" in body["message"]


def test_a_body_just_under_the_limit_is_read(api):
    response = api.post("/api/event", data=big_json(MIB - 1000), content_type="application/json")
    assert response.status_code == 400  # read, then refused by validation: not a size problem
    assert response.json()["message"] == "Validation failed, check below errors for detail."


def test_the_admin_login_refuses_a_body_over_the_limit_with_413():
    response = Client().post("/admin/login/", data="a=" + "x" * (MIB + 10),
                             content_type="application/x-www-form-urlencoded")
    assert response.status_code == 413


@pytest.mark.parametrize("levels", [201, 1000, 100_000])
@pytest.mark.parametrize("path", ["/api/event", "/api/token", "/api/eventhub/handlers/dry-run"])
def test_json_nested_deeper_than_the_records_hold_is_a_400(path, levels, api):
    response = api.post(path, data=nested(levels), content_type="application/json")
    assert response.status_code == 400, response.content[:200]
    assert "nested more than 200 levels deep" in response.json()["message"]
    # Without credentials: the open key exchange reads it and says the same; the others never read it.
    anonymous = APIClient().post(path, data=nested(levels), content_type="application/json")
    assert anonymous.status_code == (400 if path == "/api/token" else 401)


def test_json_nested_within_the_limit_goes_on_to_validation(api):
    response = api.post("/api/event", data=nested(200), content_type="application/json")
    assert response.status_code == 400
    assert "nested" not in response.json()["message"]
