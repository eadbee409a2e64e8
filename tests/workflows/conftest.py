import contextlib
import copy
import socket
import sys
import threading
import uuid

import pytest
from django.db import connections

from workflows.models import WorkflowDefinition

ADDRESS = {"name": "Ada Lovelace", "street": "12 St James's Square", "city": "London", "zip": "SW1Y 4LB",
           "country": "GB"}

SHIPPING_WORKFLOW = {
    "name": "shipping_workflow",
    "version": 1,
    "description": "Ship an order once the customer has signed with DocuSign.",
    "inputParameters": ["address"],
    "tasks": [
        {"name": "human_docusign_step", "taskReferenceName": "human_docusign_step_ref", "type": "HUMAN",
         "inputParameters": {"address": "${workflow.input.address}"}},
        {"name": "ship_order", "taskReferenceName": "ship_order_ref", "type": "SIMPLE",
         "inputParameters": {"address": "${workflow.input.address}",
                             "signedBy": "${human_docusign_step_ref.output.signedBy}"}},
    ],
    "outputParameters": {"trackingNumber": "${ship_order_ref.output.trackingNumber}",
                         "signedBy": "${human_docusign_step_ref.output.signedBy}"},
}


def unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:8]}"


def shipping_definition(name: str = "shipping_workflow", version: int = 1) -> dict:
    data = copy.deepcopy(SHIPPING_WORKFLOW)
    data.update(name=name, version=version)
    return data


def register(data: dict) -> WorkflowDefinition:
    definition = WorkflowDefinition.from_conductor(copy.deepcopy(data))
    definition.save()
    return definition


def one_task(task_type: str, ref: str = "step_ref", **extra) -> dict:
    return {"name": unique("flow"), "version": 1,
            "tasks": [{"name": ref.removesuffix("_ref"), "taskReferenceName": ref, "type": task_type, **extra}]}


@pytest.fixture
def live_api(live_server):
    """The live server, left with no request thread holding the database when the test ends.

    Request threads close their connection after each request (CONN_MAX_AGE 0); at teardown,
    after the test's clients are closed, the threads of kept-alive HTTP connections are ended.
    Otherwise such a thread may close its (shared, in-memory SQLite) connection only after the
    server has stopped sharing it, or hold a PostgreSQL session while the test database is dropped.
    """
    saved = connections.settings["default"]["CONN_MAX_AGE"]
    connections.settings["default"]["CONN_MAX_AGE"] = 0
    yield live_server
    end_request_threads()
    connections.settings["default"]["CONN_MAX_AGE"] = saved


def end_request_threads() -> None:
    """Shut down the socket of each live-server request thread (daemons socketserver does not track)."""
    frames = sys._current_frames()
    for thread in threading.enumerate():
        if not thread.name.endswith("(process_request_thread)"):
            continue
        frame = frames.get(thread.ident)
        while frame is not None and not isinstance(frame.f_locals.get("request"), socket.socket):
            frame = frame.f_back
        if frame is not None:
            with contextlib.suppress(OSError):
                frame.f_locals["request"].shutdown(socket.SHUT_RDWR)
        thread.join(timeout=10)


@pytest.fixture
def shipping(db) -> WorkflowDefinition:
    return register(shipping_definition())
