"""What the lists say at a glance (issue 21): a message whose actions failed, a replay, the quarantine's open
entries, and the links between a quarantined message and its entry. (That they fit 1366 px is checked in a
browser: tests/handlers/test_overview_browser.py.)"""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from queues.models import QuarantinedMessage, ReceivedMessage

from .test_overview import EVENT, config, received, record

pytestmark = pytest.mark.django_db
MESSAGES = reverse("admin:queues_receivedmessage_changelist")
QUARANTINE = reverse("admin:queues_quarantinedmessage_changelist")
Outcome = ReceivedMessage.Outcome


@pytest.fixture
def now():
    return timezone.now() - timedelta(seconds=30)


def listed(client, url: str, **params) -> list:
    response = client.get(url, params)
    assert response.status_code == 200
    return list(response.context["cl"].result_list)


def test_a_message_whose_actions_failed_reads_actions_failed_and_filters_apart(admin_client, now):
    config(EVENT)
    failed, fine = received(EVENT, now), received(EVENT, now)
    record(failed, "ship", status="FAILED")
    record(fine, "ship")
    html = admin_client.get(MESSAGES).content.decode()
    assert html.count("Actions failed</span>") == 1 and html.count(">Acknowledged</span>") == 1
    assert listed(admin_client, MESSAGES, outcome="FAILED") == [failed]
    assert listed(admin_client, MESSAGES, outcome="ACKNOWLEDGED") == [fine]


def test_only_a_replay_is_marked_and_no_row_shows_a_false_icon(admin_client, now, superuser):
    config(EVENT)
    original = received(EVENT, now)
    ReceivedMessage.objects.create(event=EVENT, message_id=f"{original.message_id}:replay:1", replay_of=original,
                                   replayed_by=superuser, replay_reason="test", outcome=Outcome.ACKNOWLEDGED)
    html = admin_client.get(MESSAGES).content.decode()
    assert html.count(">replay</span>") == 1 and "icon-no.svg" not in html


def test_the_quarantine_lists_open_entries_unless_asked_for_others(admin_client):
    open_entry = QuarantinedMessage.objects.create(event=EVENT, message_id="open", reason="unreadable")
    retried = QuarantinedMessage.objects.create(event=EVENT, message_id="done", reason="unreadable",
                                                status=QuarantinedMessage.Status.RETRIED)
    assert listed(admin_client, QUARANTINE) == [open_entry]
    assert listed(admin_client, QUARANTINE, status="RETRIED") == [retried]
    assert set(listed(admin_client, QUARANTINE, status="all")) == {open_entry, retried}
    assert "Open (in quarantine)" in admin_client.get(QUARANTINE).content.decode()


def test_a_quarantined_message_and_its_entry_link_to_each_other(admin_client, now):
    config(EVENT)
    delivery = received(EVENT, now, Outcome.QUARANTINED)
    entry = QuarantinedMessage.objects.create(event=EVENT, message_id=delivery.message_id, reason="unreadable")
    message_page = admin_client.get(reverse("admin:queues_receivedmessage_change", args=[delivery.pk]))
    entry_page = admin_client.get(reverse("admin:queues_quarantinedmessage_change", args=[entry.pk]))
    assert reverse("admin:queues_quarantinedmessage_change", args=[entry.pk]) in message_page.content.decode()
    assert reverse("admin:queues_receivedmessage_change", args=[delivery.pk]) in entry_page.content.decode()
