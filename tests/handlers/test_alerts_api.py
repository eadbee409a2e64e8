"""GET /api/eventhub/alerts, acknowledging and silencing over the API, and the rules."""

import pytest
from django.utils import timezone

from handlers.alerts import evaluate_alerts
from handlers.models import Alert, AlertRule
from queues.configs import ensure_config
from queues.models import QueueConfig

from ..conftest import make_user, token_client

pytestmark = pytest.mark.django_db

EVENT = "conductor:orders"


def test_it_lists_alerts_filtered_by_state(api, alert):
    body = api.get("/api/eventhub/alerts?state=open").json()
    assert body["count"] == 1
    [item] = body["results"]
    assert (item["id"], item["kind"], item["subject"], item["state"]) == (alert.pk, "backlog", EVENT, "open")
    assert (item["detail"], item["current"]) == ("5000 messages ready (limit 1000)",) * 2
    assert item["checkedAt"] == item["openedAt"]
    assert item["events"] == [{"fromState": "", "toState": "open", "at": item["openedAt"], "by": "eventhub",
                               "reason": ""}]
    assert [(n["channel"], n["status"], n["toState"]) for n in item["notifications"]] == [("email", "sent", "open")]
    assert api.get("/api/eventhub/alerts?state=resolved").json()["count"] == 0


def test_an_unknown_state_is_a_conductor_error(api, alert):
    response = api.get("/api/eventhub/alerts?state=burning")
    assert response.status_code == 400
    assert response.json()["validationErrors"][0]["path"] == "state"


def test_it_acknowledges_with_a_reason_and_records_who(api, alert):
    response = api.post(f"/api/eventhub/alerts/{alert.pk}/acknowledge", {"reason": "on it"}, format="json")
    assert response.status_code == 200, response.json()
    assert response.json()["state"] == "acknowledged"
    assert response.json()["events"][-1] | {"at": None} == {"fromState": "open", "toState": "acknowledged",
                                                             "at": None, "by": "root", "reason": "on it"}


def test_it_silences_for_a_time(api, alert):
    before = timezone.now()
    response = api.post(f"/api/eventhub/alerts/{alert.pk}/silence", {"reason": "deploy", "minutes": 30},
                        format="json")
    assert response.status_code == 200
    alert.refresh_from_db()
    assert alert.state == "silenced" and (alert.silenced_until - before).total_seconds() >= 30 * 60


def test_a_silence_needs_minutes_and_a_reason(api, alert):
    response = api.post(f"/api/eventhub/alerts/{alert.pk}/silence", {}, format="json")
    assert response.status_code == 400
    assert {p["path"] for p in response.json()["validationErrors"]} == {"reason", "minutes"}


def test_a_resolved_alert_cannot_be_acknowledged(api, alert):
    QueueConfig.objects.update(depth=0)
    evaluate_alerts()
    response = api.post(f"/api/eventhub/alerts/{alert.pk}/acknowledge", {"reason": "late"}, format="json")
    assert response.status_code == 400
    assert "resolved" in response.json()["validationErrors"][0]["message"]


def test_an_unknown_alert_is_404(api, alert):
    response = api.post("/api/eventhub/alerts/999999/acknowledge", {"reason": "x"}, format="json")
    assert response.status_code == 404 and response.json()["message"] == "No alert with id 999999."


def test_a_viewer_reads_but_cannot_acknowledge(django_user_model, alert):
    viewer = token_client(make_user(django_user_model, "viewer", "view_alert"))
    assert viewer.get("/api/eventhub/alerts").status_code == 200
    assert viewer.post(f"/api/eventhub/alerts/{alert.pk}/acknowledge", {"reason": "x"},
                       format="json").status_code == 403
    assert Alert.objects.get().state == "open"


def test_rules_are_editable_over_the_api(api):
    config = ensure_config(EVENT)
    response = api.post("/api/eventhub/alert-rules", {"kind": "backlog", "queue": EVENT, "threshold": 10,
                                                     "windowMinutes": 5}, format="json")
    assert response.status_code == 201, response.json()
    rule = AlertRule.objects.get(pk=response.json()["id"])
    assert (rule.queue, rule.threshold) == (config, 10)

    response = api.patch(f"/api/eventhub/alert-rules/{rule.pk}", {"enabled": False}, format="json")
    assert response.status_code == 200 and not AlertRule.objects.get(pk=rule.pk).enabled
    assert api.get("/api/eventhub/alert-rules").json()["count"] == 6


def test_a_rule_is_validated_by_the_model(api):
    ensure_config(EVENT)
    response = api.post("/api/eventhub/alert-rules", {"kind": "failure_rate", "queue": EVENT, "threshold": 2},
                        format="json")
    assert response.status_code == 400
    assert {p["path"] for p in response.json()["validationErrors"]} == {"queue", "threshold"}
    duplicate = api.post("/api/eventhub/alert-rules", {"kind": "backlog"}, format="json")
    assert duplicate.status_code == 400
    assert [p["message"] for p in duplicate.json()["validationErrors"]] == [
        "There is a rule of this kind for this target already: change that one."]


def test_it_filters_by_kind_and_subject_too(api, alert):
    assert api.get(f"/api/eventhub/alerts?kind=backlog&subject={EVENT}").json()["count"] == 1
    assert api.get("/api/eventhub/alerts?kind=no_consumer").json()["count"] == 0
    assert api.get("/api/eventhub/alerts?subject=conductor:other").json()["count"] == 0
