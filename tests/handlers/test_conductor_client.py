"""The official conductor-python SDK, unchanged, against a live Eventhub server."""

import pytest
from conductor.client.configuration.configuration import Configuration
from conductor.client.configuration.settings.authentication_settings import AuthenticationSettings
from conductor.client.http.api.event_resource_api import EventResourceApi
from conductor.client.http.api_client import ApiClient
from conductor.client.http.models.action import Action
from conductor.client.http.models.event_handler import EventHandler as SdkEventHandler
from conductor.client.http.models.start_workflow import StartWorkflow
from conductor.client.http.models.task_details import TaskDetails
from conductor.client.http.rest import ApiException

from handlers.models import ApiKey, EventHandler, HandlerRevision

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def events(live_server, superuser) -> EventResourceApi:
    key, secret = ApiKey.issue(superuser, "conductor-python")
    configuration = Configuration(
        server_api_url=live_server.url + "/api",
        authentication_settings=AuthenticationSettings(key_id=key.key_id, key_secret=secret),
    )
    return EventResourceApi(ApiClient(configuration))


def shipping_handler(**changes) -> SdkEventHandler:
    handler = SdkEventHandler(
        name="start_shipping_workflow",
        event="sqs:shipping_start",
        condition="$.customer != null",
        actions=[
            Action(
                action="start_workflow",
                start_workflow=StartWorkflow(name="shipping_workflow", version=1, input={"address": "${address}"}),
                expand_inline_json=False,
            )
        ],
        active=True,
    )
    for key, value in changes.items():
        setattr(handler, key, value)
    return handler


def test_the_sdk_registers_lists_fetches_updates_and_deletes_handlers(events):
    events.add_event_handler(shipping_handler())
    stored = EventHandler.objects.get(name="start_shipping_workflow")
    assert stored.actions == [
        {"action": "start_workflow", "expandInlineJSON": False,
         "start_workflow": {"name": "shipping_workflow", "version": 1, "input": {"address": "${address}"}}}
    ]
    [listed] = events.get_event_handlers()
    assert listed.name == "start_shipping_workflow"
    assert listed.actions[0].start_workflow.input == {"address": "${address}"}

    assert [h.name for h in events.get_event_handlers_for_event("sqs:shipping_start")] == ["start_shipping_workflow"]
    events.update_event_handler(shipping_handler(active=False))
    assert events.get_event_handlers_for_event("sqs:shipping_start", active_only=True) == []
    [inactive] = events.get_event_handlers_for_event("sqs:shipping_start", active_only=False)
    assert inactive.active is False

    events.remove_event_handler_status("start_shipping_workflow")
    assert events.get_event_handlers() == []
    assert HandlerRevision.objects.filter(changed_by_name="root").count() == 3


def test_the_sdk_sees_conflict_not_found_and_validation_errors(events):
    events.add_event_handler(shipping_handler())
    with pytest.raises(ApiException) as conflict:
        events.add_event_handler(shipping_handler())
    assert conflict.value.status == 409

    with pytest.raises(ApiException) as missing:
        events.update_event_handler(shipping_handler(name="nobody_here"))
    assert missing.value.status == 404
    with pytest.raises(ApiException) as gone:
        events.remove_event_handler_status("nobody_here")
    assert gone.value.status == 404

    bad = shipping_handler(name="bad", event="kafka:x",
                           actions=[Action(action="complete_task", complete_task=TaskDetails(output={}))])
    with pytest.raises(ApiException) as invalid:
        events.add_event_handler(bad)
    assert invalid.value.status == 400
    assert "actions[0].complete_task.taskRefName" in invalid.value.body
    assert not EventHandler.objects.filter(name="bad").exists()


def test_the_sdk_renews_an_expired_token_by_itself(events, settings):
    events.get_event_handlers()
    # Make every token the SDK already holds unreadable: it is told INVALID_TOKEN, fetches a new one
    # with its key and retries the call.
    settings.SECRET_KEY = "rotated-" + settings.SECRET_KEY
    events.add_event_handler(shipping_handler())
    assert EventHandler.objects.filter(name="start_shipping_workflow").exists()
