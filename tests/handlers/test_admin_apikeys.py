import re

import pytest
from django.urls import reverse
from django.utils import timezone

from handlers.models import ApiKey
from tests.conftest import make_user

ADD = reverse("admin:handlers_apikey_add")
CHANGELIST = reverse("admin:handlers_apikey_changelist")
SECRET_MESSAGE = re.compile(r"Key id: <code>(?P<key_id>[0-9a-f]+)</code> Secret: <code>(?P<secret>[^<]+)</code>")


def change_url(key: ApiKey) -> str:
    return reverse("admin:handlers_apikey_change", args=[key.pk])


@pytest.mark.django_db
def test_the_add_form_asks_only_for_name_and_user(admin_client):
    form = admin_client.get(ADD).context["adminform"].form
    assert list(form.fields) == ["name", "user"]


@pytest.mark.django_db
def test_it_issues_a_key_and_shows_its_secret_once(admin_client, django_user_model):
    worker = make_user(django_user_model, "worker", "view_eventhandler", staff=False)
    response = admin_client.post(ADD, {"name": "orders-service", "user": worker.pk, "_save": "Save"}, follow=True)
    shown = [str(m) for m in response.context["messages"] if SECRET_MESSAGE.search(str(m))]
    assert len(shown) == 1
    match = SECRET_MESSAGE.search(shown[0])
    key = ApiKey.objects.get()
    assert (key.key_id, key.name, key.user) == (match["key_id"], "orders-service", worker)
    assert key.check_secret(match["secret"])
    assert match["secret"] not in key.secret_hash
    assert "only its hash is stored" in shown[0]
    again = admin_client.get(change_url(key)).content.decode()
    assert key.key_id in again and match["secret"] not in again


@pytest.mark.django_db
def test_only_the_name_changes_after_creation(admin_client, superuser, django_user_model):
    other = make_user(django_user_model, "other")
    key, secret = ApiKey.issue(superuser, "old name")
    form = admin_client.get(change_url(key)).context["adminform"].form
    assert list(form.fields) == ["name"]
    response = admin_client.post(change_url(key), {"name": "new name", "user": other.pk, "key_id": "forged",
                                                    "_save": "Save"})
    assert response.status_code == 302
    key.refresh_from_db()
    assert (key.name, key.user, key.check_secret(secret)) == ("new name", superuser, True)
    assert key.key_id != "forged"


@pytest.mark.django_db
def test_it_revokes_the_selected_keys_and_reports_how_many(admin_client, superuser):
    keys = [ApiKey.issue(superuser, f"key {n}")[0] for n in range(3)]
    keys[2].revoke()
    response = admin_client.post(
        CHANGELIST,
        {"action": "revoke_selected", "_selected_action": [k.pk for k in keys]}, follow=True)
    assert [str(m) for m in response.context["messages"]] == ["Revoked 2 API keys; 1 was already revoked."]
    assert not ApiKey.objects.filter(revoked_at=None).exists()


@pytest.mark.django_db
def test_it_lists_keys_with_their_user_and_state_without_n_plus_one(
    admin_client, django_user_model, django_assert_max_num_queries
):
    for n in range(20):
        key, _ = ApiKey.issue(make_user(django_user_model, f"user{n}"), f"service {n}")
    ApiKey.objects.filter(pk=key.pk).update(last_used_at=timezone.now())
    with django_assert_max_num_queries(12):
        response = admin_client.get(CHANGELIST)
    html = response.content.decode()
    assert len(response.context["cl"].result_list) == 20
    assert key.key_id in html and "user19" in html and "service 19" in html
    assert len(admin_client.get(CHANGELIST, {"status": "revoked"}).context["cl"].result_list) == 0


@pytest.mark.django_db
def test_staff_who_are_not_superusers_issue_keys_only_for_themselves(client, superuser, django_user_model):
    staff = make_user(django_user_model, "staff", "add_apikey", "view_apikey")
    client.force_login(staff)
    choices = client.get(ADD).context["adminform"].form.fields["user"].queryset
    assert list(choices) == [staff]
    response = client.post(ADD, {"name": "escalate", "user": superuser.pk, "_save": "Save"})
    assert response.status_code == 200
    assert "user" in response.context["adminform"].form.errors
    assert not ApiKey.objects.exists()


@pytest.mark.django_db
def test_a_viewer_of_keys_cannot_revoke_them(client, superuser, django_user_model):
    client.force_login(make_user(django_user_model, "auditor", "view_apikey"))
    key, _ = ApiKey.issue(superuser, "service")
    response = client.post(CHANGELIST, {"action": "revoke_selected", "_selected_action": [key.pk]}, follow=True)
    assert response.status_code == 200
    key.refresh_from_db()
    assert key.revoked_at is None
