"""The alerts in the admin: the header's count, acknowledge and silence actions, rules editable."""

import pytest

from handlers.models import Alert, AlertRule

from ..conftest import make_user

pytestmark = pytest.mark.django_db

EVENT = "conductor:orders"
CHANGELIST = "/admin/handlers/alert/"


@pytest.fixture
def staff(client, superuser):
    client.force_login(superuser)
    return client


def act(client, alert: Alert, action: str, **fields):
    data = {"action": action, "_selected_action": [alert.pk], "index": 0, **fields}
    return client.post(CHANGELIST, data, follow=True)


def test_the_header_counts_open_alerts(staff, alert):
    page = staff.get("/admin/").content.decode()
    assert "1 open alert<" in page and f"{CHANGELIST}?state__exact=open" in page
    alert.acknowledge(None, "on it")
    assert "open alert" not in staff.get("/admin/").content.decode()


def test_the_header_says_nothing_to_who_may_not_see_alerts(client, django_user_model, alert):
    client.force_login(make_user(django_user_model, "clerk", "view_eventhandler"))
    assert "open alert" not in client.get("/admin/").content.decode()


def test_it_acknowledges_with_the_reason_given(staff, alert):
    page = act(staff, alert, "acknowledge", reason="looking at the producer").content.decode()
    assert "1 alert(s) acknowledged." in page
    alert.refresh_from_db()
    assert (alert.state, alert.reason) == ("acknowledged", "looking at the producer")
    assert alert.events.last().by_name == "root"


def test_it_silences_for_the_minutes_given(staff, alert):
    act(staff, alert, "silence", reason="deploy", minutes=15)
    alert.refresh_from_db()
    assert alert.state == "silenced"
    assert (alert.silenced_until - alert.events.last().at).total_seconds() == 15 * 60


def test_an_action_without_a_reason_changes_nothing(staff, alert):
    page = act(staff, alert, "acknowledge", reason="").content.decode()
    assert "Give a reason" in page
    alert.refresh_from_db()
    assert alert.state == "open"


def test_the_alert_page_shows_state_changes_and_notification_attempts(staff, alert):
    page = staff.get(f"{CHANGELIST}{alert.pk}/change/").content.decode()
    assert "ops@example.com" in page and "sent to 1 message(s)" in page
    assert "eventhub" in page


def test_rules_are_editable_and_validated(staff):
    rule = AlertRule.objects.get(kind="failure_rate", handler=None, queue=None)
    url = f"/admin/handlers/alertrule/{rule.pk}/change/"
    form = {"kind": "failure_rate", "enabled": "on", "threshold": "0.2", "window_minutes": "30"}
    assert staff.post(url, form).status_code == 302
    rule.refresh_from_db()
    assert (rule.threshold, rule.window_minutes) == (0.2, 30)
    page = staff.post(url, {**form, "threshold": "3"}).content.decode()
    assert "A failure rate is a share" in page


def test_a_silence_over_thirty_days_changes_nothing(staff, alert):
    page = act(staff, alert, "silence", reason="forever", minutes=60 * 24 * 31).content.decode()
    assert "minutes from 1 to 43200" in page
    alert.refresh_from_db()
    assert alert.state == "open"


def test_the_alert_page_offers_no_save_and_no_delete_and_deleting_is_refused(staff, alert):
    page = staff.get(f"{CHANGELIST}{alert.pk}/change/").content.decode()
    assert 'name="_save"' not in page and 'name="_continue"' not in page and "deletelink" not in page
    assert 'action="/admin/handlers/alert/' in page  # its acknowledge / silence form is still there
    assert staff.post(f"{CHANGELIST}{alert.pk}/delete/", {"post": "yes"}).status_code == 403
    listed = staff.get(CHANGELIST).content.decode()
    assert 'value="delete_selected"' not in listed
    assert Alert.objects.filter(pk=alert.pk).exists()


def test_resolving_keeps_the_reason_it_was_acknowledged_with(alert):
    alert.acknowledge(None, "looking at the producer")
    alert.change(Alert.State.RESOLVED, reason="condition cleared")
    alert.refresh_from_db()
    assert (alert.state, alert.reason) == ("resolved", "looking at the producer")
    assert alert.events.last().reason == "condition cleared"
