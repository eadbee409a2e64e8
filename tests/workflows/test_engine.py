"""The engine interface's registry: `WORKFLOW_ENGINE` names an engine, or gives its class's dotted path."""

import pytest
from django.core.exceptions import ImproperlyConfigured

from workflows.builtin import BuiltinEngine
from workflows.conductor import ConductorEngine
from workflows.engine import ENGINES, UpdatedTask, WorkflowEngine, engine_class, get_engine


class PlainEngine(WorkflowEngine):
    """A third engine, built from a setting of its own: only the interface's defaults besides."""

    def __init__(self, greeting: str = "") -> None:
        self.greeting = greeting

    @classmethod
    def configuration(cls) -> dict:
        from django.conf import settings

        return {"greeting": getattr(settings, "PLAIN_ENGINE_GREETING", "hello")}

    def start_workflow(self, name, version=None, input=None, correlation_id=None, task_to_domain=None,
                       idempotency_key=None, trigger=None) -> str:
        return f"{self.greeting}-{name}"

    def complete_task(self, **kwargs) -> UpdatedTask:
        return UpdatedTask("t", "w")

    def fail_task(self, **kwargs) -> UpdatedTask:
        return UpdatedTask("t", "w")

    def terminate_workflow(self, workflow_id, reason=None) -> None:
        pass

    def update_variables(self, workflow_id, variables, append_array=False) -> None:
        pass

    def get_workflow(self, workflow_id, include_tasks=True) -> dict:
        return {"workflowId": workflow_id}


class NotAnEngine:
    pass


def test_it_lists_the_engines_by_name_once():
    assert ENGINES == {"builtin": "workflows.builtin.BuiltinEngine", "conductor": "workflows.conductor.ConductorEngine"}
    assert engine_class("builtin") is BuiltinEngine
    assert engine_class("conductor") is ConductorEngine


def test_a_dotted_path_names_an_engine_too():
    assert engine_class("workflows.conductor.ConductorEngine") is ConductorEngine
    assert engine_class(f"{__name__}.PlainEngine") is PlainEngine


@pytest.mark.parametrize(("value", "why"), [
    ("zeebe", "use builtin or conductor, or the dotted path of an engine class"),
    ("workflows.zeebe.ZeebeEngine", "it cannot be imported"),
    (f"{__name__}.NotAnEngine", "it is not a subclass of workflows.engine.WorkflowEngine"),
])
def test_it_refuses_what_names_no_engine_saying_what_would(value, why):
    with pytest.raises(ImproperlyConfigured, match="is not an engine") as error:
        engine_class(value)
    assert str(error.value).startswith(f"WORKFLOW_ENGINE={value!r} is not an engine; ")
    assert why in str(error.value)


def test_each_engine_declares_whether_its_effects_roll_back_with_the_callers_transaction():
    assert BuiltinEngine.transactional is True
    assert ConductorEngine.transactional is False
    assert PlainEngine.transactional is False  # the interface's default: the safe assumption


def test_an_engine_missing_an_operation_cannot_be_made():
    class Partial(WorkflowEngine):
        def start_workflow(self, *args, **kwargs) -> str:
            return "w"

    with pytest.raises(TypeError, match="abstract"):
        Partial()


def test_it_chooses_the_engine_from_settings(settings):
    assert isinstance(get_engine(), BuiltinEngine)
    assert get_engine() is get_engine()  # one built-in engine too: what it learns (its read-ahead) lives on
    settings.WORKFLOW_ENGINE = "conductor"
    settings.CONDUCTOR_SERVER_URL = "http://127.0.0.1:9/api"
    remote = get_engine()
    assert isinstance(remote, ConductorEngine) and remote.base_url == "http://127.0.0.1:9/api"
    assert get_engine() is remote
    settings.CONDUCTOR_SERVER_URL = ""
    with pytest.raises(ImproperlyConfigured):
        get_engine()
    settings.WORKFLOW_ENGINE = "zeebe"
    with pytest.raises(ImproperlyConfigured):
        get_engine()


def test_it_keeps_one_engine_per_configuration(settings):
    settings.WORKFLOW_ENGINE = f"{__name__}.PlainEngine"
    hello = get_engine()
    assert isinstance(hello, PlainEngine) and hello.start_workflow("flow") == "hello-flow"
    assert get_engine() is hello
    settings.PLAIN_ENGINE_GREETING = "bonjour"
    bonjour = get_engine()
    assert bonjour is not hello and bonjour.start_workflow("flow") == "bonjour-flow"


def test_the_interfaces_batch_shares_nothing():
    with PlainEngine().batch(key="conductor:orders", together=True) as unit:
        assert unit.prefetch() == [] and unit.new_rows() == []
