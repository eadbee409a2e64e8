"""The alerts at the top of the overview, and acknowledging or silencing one alert from there or from its own
page (`/admin/handlers/alert/<id>/state/`). Read with Django's test client; the browser test of the same is in
tests/handlers/test_overview_alerts_browser.py."""

import re
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from handlers.alerts import evaluate_alerts, unresolved_alerts
from handlers.models import Alert, AlertRule, RuleKind
from queues.configs import ensure_config
from queues.models import QueueConfig

from ..conftest import make_user
from .seeds import START_SHIPPING
from .test_dispatch import handler

pytestmark = pytest.mark.django_db

INDEX = reverse("admin:index")
EVENT = "conductor:orders"


@pytest.fixture(autouse=True)
def no_notifications(settings):
    settings.ALERTS_WEBHOOK_URL, settings.ALERTS_EMAILS = "", []


@pytest.fixture
def staff(client, superuser):
    client.force_login(superuser)
    return client


def state_url(alert: Alert) -> str:
    return reverse("admin:handlers_alert_state", args=[alert.pk])


def open_backlog(depth: int = 5000) -> Alert:
    config = ensure_config(EVENT)
    QueueConfig.objects.filter(pk=config.pk).update(depth=depth)
    evaluate_alerts()
    return Alert.objects.get(kind=RuleKind.BACKLOG)


def an_alert(kind: str, subject: str, **fields) -> Alert:
    alert = Alert.objects.create(kind=kind, subject=subject, detail=f"{kind} on {subject}", **fields)
    alert.events.create(from_state="", to_state="open", by_name="eventhub")
    return alert


def rows(html: str) -> list[tuple[str, str]]:
    """The alert table's rows as (state, subject), in the page's order."""
    table = re.search(r'<table class="numbers" id="alert-table">.*?</table>', html, re.S).group(0)
    return re.findall(r'<tr data-alert="\d+" class="alert (\w+)">.*?data-col="subject"[^>]*>(?:<[^>]+>)?([^<]+)<',
                      table, re.S)


def test_open_alerts_top_the_overview_with_rule_subject_since_and_value_against_the_limit(staff):
    alert = open_backlog()
    html = staff.get(INDEX).content.decode()
    assert html.index('id="alerts"') < html.index('id="queues"')
    row = re.search(rf'<tr data-alert="{alert.pk}".*?</tr>', html, re.S).group(0)
    rule = AlertRule.objects.get(kind=RuleKind.BACKLOG, queue=None)
    assert reverse("admin:handlers_alertrule_change", args=[rule.pk]) in row and ">Backlog<" in row
    assert reverse("admin:queues_queueconfig_change", args=[alert.queue_id]) in row
    assert "5000 messages ready (limit 1000)" in row and "just now" in row
    assert reverse("admin:handlers_alert_change", args=[alert.pk]) in row
    assert f'action="{state_url(alert)}"' in row and 'name="next" value="/admin/"' in row


def test_the_value_shown_is_the_latest_evaluations_not_the_one_it_opened_with(staff):
    alert = open_backlog(5000)
    QueueConfig.objects.update(depth=7000)
    later = timezone.now() + timedelta(minutes=3)
    evaluate_alerts(later)
    alert.refresh_from_db()
    assert (alert.detail, alert.current, alert.checked_at) == (
        "5000 messages ready (limit 1000)", "7000 messages ready (limit 1000)", later)
    html = staff.get(INDEX).content.decode()
    assert "7000 messages ready" in html and "5000 messages ready" not in html


def test_acknowledged_and_silenced_alerts_show_below_the_open_ones_marked_with_who_and_why(staff, superuser):
    ship = handler(START_SHIPPING, event=EVENT, name="ship")
    silenced = an_alert(RuleKind.FAILURE_RATE, "ship", handler=ship)
    acknowledged = an_alert(RuleKind.HANDLER_SILENT, "ship", handler=ship)
    an_alert(RuleKind.NO_CONSUMER, "conductor:gone")  # its queue deleted since: no link
    an_alert(RuleKind.BACKLOG, "conductor:fixed", state="resolved", resolved_at=timezone.now())
    silenced.silence(superuser, "deploy tonight", 90)
    acknowledged.acknowledge(superuser, "looking at the producer")

    html = staff.get(INDEX).content.decode()
    assert rows(html) == [("open", "conductor:gone"), ("acknowledged", "ship"), ("silenced", "ship")]
    row = re.search(rf'<tr data-alert="{silenced.pk}".*?</tr>', html, re.S).group(0)
    local = timezone.localtime(silenced.silenced_until)
    assert f"until {local.day} {local:%b %H:%M} · root" in row and "“deploy tonight”" in row
    assert reverse("admin:handlers_eventhandler_change", args=[ship.pk]) in row
    row = re.search(rf'<tr data-alert="{acknowledged.pk}".*?</tr>', html, re.S).group(0)
    assert "just now</time> · root" in row and "“looking at the producer”" in row
    assert "2 not resolved" not in html and "3 not resolved" in html


def test_without_alerts_the_overview_says_so_in_a_line(staff):
    html = staff.get(INDEX).content.decode()
    assert "No open alerts" in html and 'id="alert-table"' not in html


def test_who_may_not_see_alerts_gets_no_alerts_and_who_may_not_change_them_no_forms(client, django_user_model):
    alert = open_backlog()
    client.force_login(make_user(django_user_model, "reader", "view_receivedmessage"))
    html = client.get(INDEX).content.decode()
    assert "Is everything flowing?" in html and 'id="alerts"' not in html
    client.force_login(make_user(django_user_model, "watcher", "view_receivedmessage", "view_alert"))
    html = client.get(INDEX).content.decode()
    assert f'data-alert="{alert.pk}"' in html and "alert-state" not in html
    response = client.post(state_url(alert), {"do": "acknowledge", "reason": "mine"})
    assert response.status_code == 403
    assert Alert.objects.get().state == "open"


def test_it_acknowledges_from_the_overview_and_goes_back_there(staff):
    alert = open_backlog()
    response = staff.post(state_url(alert), {"do": "acknowledge", "reason": "scaling the consumers", "next": INDEX,
                                             "minutes": "60"}, follow=True)
    assert response.redirect_chain == [(INDEX, 302)]
    assert f"{alert}: acknowledged." in response.content.decode()
    alert.refresh_from_db()
    event = alert.events.last()
    assert (alert.state, alert.reason) == ("acknowledged", "scaling the consumers")
    assert (event.from_state, event.to_state, event.by_name, event.reason) == (
        "open", "acknowledged", "root", "scaling the consumers")


def test_it_silences_for_the_minutes_chosen_and_says_until_when(staff):
    alert = open_backlog()
    response = staff.post(state_url(alert), {"do": "silence", "reason": "deploy", "minutes": "240", "next": INDEX},
                          follow=True)
    alert.refresh_from_db()
    assert alert.state == "silenced"
    assert alert.silenced_until - alert.events.last().at == timedelta(hours=4)
    local = timezone.localtime(alert.silenced_until)
    assert f"silenced until {local.day} {local:%b %H:%M}." in response.content.decode()


@pytest.mark.parametrize(("post", "says"), [
    ({"do": "acknowledge", "reason": "  "}, "Give a reason."),
    ({"do": "silence", "reason": "deploy"}, "Say for how many minutes."),
    ({"do": "silence", "reason": "deploy", "minutes": "0"}, "greater than or equal to 1"),
    ({"do": "silence", "reason": "deploy", "minutes": "43201"}, "less than or equal to 43200"),
    ({"do": "burn", "reason": "x"}, "Select a valid choice"),
])
def test_bad_input_changes_nothing_and_says_why(staff, post, says):
    alert = open_backlog()
    response = staff.post(state_url(alert), {**post, "next": INDEX}, follow=True)
    assert response.redirect_chain == [(INDEX, 302)]
    assert "nothing changed" in response.content.decode() and says in response.content.decode()
    alert.refresh_from_db()
    assert alert.state == "open" and alert.events.count() == 1


def test_an_alert_resolved_meanwhile_is_left_resolved(staff):
    alert = open_backlog()
    QueueConfig.objects.update(depth=0)
    evaluate_alerts()
    response = staff.post(state_url(alert), {"do": "acknowledge", "reason": "late", "next": INDEX}, follow=True)
    assert "A resolved alert cannot be acknowledged or silenced." in response.content.decode()
    assert Alert.objects.get().state == "resolved"


def test_the_alert_page_has_the_form_and_it_goes_back_to_the_page(staff):
    alert = open_backlog()
    page = reverse("admin:handlers_alert_change", args=[alert.pk])
    html = staff.get(page).content.decode()
    assert 'id="alert-state"' in html and f'name="next" value="{page}"' in html
    response = staff.post(state_url(alert), {"do": "silence", "reason": "deploy", "minutes": "15", "next": page})
    assert response["Location"] == page
    assert "deploy" in staff.get(page).content.decode()  # the state change, inline on the page


def test_it_goes_back_to_no_other_site_and_takes_no_get(staff):
    alert = open_backlog()
    response = staff.post(state_url(alert), {"do": "acknowledge", "reason": "x", "next": "https://evil.example/"})
    assert response["Location"] == reverse("admin:handlers_alert_change", args=[alert.pk])
    assert staff.get(state_url(alert)).status_code == 405
    assert staff.post(reverse("admin:handlers_alert_state", args=[999999]), {}).status_code == 404


def test_beyond_the_first_ones_it_counts_them_all():
    for n in range(3):
        an_alert(RuleKind.BACKLOG, f"conductor:q{n}")
    shown, total = unresolved_alerts(limit=2)
    assert (len(shown), total) == (2, 3)
    assert unresolved_alerts(limit=3)[1] == 3


def verdict(html: str) -> str:
    return re.sub(r"\s+", " ", re.search(r'<span class="verdict (\w+)" id="verdict">(.*?)</span>', html, re.S)
                  .expand(r"\1: \2")).strip()


def polled(event: str = EVENT) -> None:
    config = ensure_config(event)
    QueueConfig.objects.filter(pk=config.pk).update(last_poll_at=timezone.now())


def test_the_verdict_is_not_all_flowing_while_an_alert_is_open(staff, superuser):
    polled()
    assert verdict(staff.get(INDEX).content.decode()) == "good: All 1 queue flowing"
    alert = open_backlog(depth=5000)
    QueueConfig.objects.update(depth=0, last_poll_at=timezone.now())  # flowing: only the alert says otherwise
    assert verdict(staff.get(INDEX).content.decode()) == 'bad: All 1 queue flowing · <a href="#alerts">1 alert open</a>'
    alert.acknowledge(superuser, "draining it by hand")
    assert verdict(staff.get(INDEX).content.decode()) == "good: All 1 queue flowing"


def test_open_alerts_beyond_those_shown_are_all_counted_in_the_verdict(staff, monkeypatch):
    polled()
    for n in range(4):
        an_alert(RuleKind.BACKLOG, f"conductor:q{n}")
    monkeypatch.setattr("handlers.alerts.SHOWN_ALERTS", 2)
    monkeypatch.setattr("handlers.alerts.unresolved_alerts.__defaults__", (2,))
    assert verdict(staff.get(INDEX).content.decode()).endswith("4 alerts open</a>")


def test_the_header_takes_the_overviews_count_of_open_alerts_rather_than_counting_again(staff):
    open_backlog()
    with CaptureQueriesContext(connection) as queries:
        html = staff.get(INDEX).content.decode()
    assert "1 open alert<" in html
    counted = [q["sql"] for q in queries if "handlers_alert" in q["sql"] and "COUNT(" in q["sql"].upper()]
    assert counted == []  # (the one query reading the alerts shown gives the count of the open ones)
