"""The documented scenario on every real broker, through the listener: queue → handler → workflow."""

import pytest

from handlers.changes import save_handler
from handlers.listener import Listener
from handlers.models import ActionExecution, EventHandler
from queues.publish import publish
from workflows.models import Task, Workflow

from ..brokers import KINDS
from ..workflows.conftest import ADDRESS, register, shipping_definition
from .seeds import COMPLETE_DOCUSIGN, FAIL_DOCUSIGN, START_SHIPPING

pytestmark = pytest.mark.django_db(transaction=True)


def handler(data: dict, **changes) -> EventHandler:
    item = EventHandler()
    item.apply_conductor({**data, **changes})
    item.full_clean()
    save_handler(item, user=None, source="test")
    return item


def consume_until(listener: Listener, done, attempts: int = 30):
    for _ in range(attempts):
        listener.run_once(wait=0.5)
        result = done()
        if result:
            return result
    raise AssertionError("the listener did not get there")


@pytest.mark.parametrize("kind", KINDS)
def test_the_documented_scenario_runs_on_every_broker(kind, make_config, api, client, superuser):
    register(shipping_definition())
    start, completed, failed, picky, broken = (make_config(kind) for _ in range(5))
    handler(START_SHIPPING, event=start.event)
    handler(COMPLETE_DOCUSIGN, event=completed.event)
    handler(FAIL_DOCUSIGN, event=failed.event)
    handler(START_SHIPPING, name="express_only", event=picky.event, condition="$.priority > 5")
    handler(START_SHIPPING, name="unknown_workflow", event=broken.event, actions=[
        {"action": "start_workflow", "start_workflow": {"name": "no_such_workflow"}}])
    listener = Listener()
    customer = {"customer": {"name": ADDRESS["name"], "address": ADDRESS}}

    publish(start.event, customer, message_id="order-1")
    publish(start.event, customer, message_id="order-2")
    first, second = consume_until(listener, lambda: Workflow.objects.count() == 2 and Workflow.objects.order_by(
        "created_at"))
    assert first.input["address"]["city"] == ADDRESS["city"]
    assert {w.trigger["messageId"] for w in (first, second)} == {"order-1", "order-2"}

    publish(completed.event, {"workflowInstanceId": first.id, "signer": "ada"})
    publish(failed.event, {"workflowInstanceId": second.id})
    consume_until(listener, lambda: ActionExecution.objects.filter(status="COMPLETED").count() == 4)
    first.refresh_from_db()
    second.refresh_from_db()
    assert Task.objects.get(workflow=first, reference_task_name="human_docusign_step_ref").status == "COMPLETED"
    assert Task.objects.get(workflow=first, reference_task_name="ship_order_ref").status == "SCHEDULED"
    assert first.status == "RUNNING" and second.status == "FAILED"

    publish(picky.event, {"priority": 1, **customer})
    publish(broken.event, customer)
    skipped = consume_until(listener, lambda: ActionExecution.objects.filter(handler_name="express_only").first())
    failure = consume_until(listener, lambda: ActionExecution.objects.filter(handler_name="unknown_workflow").first())
    assert skipped.status == "SKIPPED" and "priority > 5" in skipped.reason
    assert failure.status == "FAILED" and "no_such_workflow" in failure.error
    assert Workflow.objects.count() == 2
    listener.close()

    # Every message and execution can be read back over the API and found in the admin.
    executions = ActionExecution.objects.filter(duplicate_of=None)
    listed = api.get("/api/eventhub/executions", {"limit": 100}).json()["results"]
    assert {e["id"] for e in listed} == set(executions.values_list("id", flat=True))
    messages = api.get("/api/eventhub/messages", {"event": start.event}).json()["results"]
    assert {m["messageId"] for m in messages} == {"order-1", "order-2"}
    client.force_login(superuser)
    page = client.get("/admin/handlers/actionexecution/", {"q": "order-1"})
    assert page.status_code == 200 and "order-1" in page.content.decode()
    assert client.get(f"/admin/queues/receivedmessage/{failure.delivery_id}/change/").status_code == 200
