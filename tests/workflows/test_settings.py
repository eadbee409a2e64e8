from tests.test_smoke_settings import run_manage


def test_it_refuses_an_unknown_workflow_engine():
    result = run_manage("check", WORKFLOW_ENGINE="zeebe")
    assert result.returncode != 0
    assert "WORKFLOW_ENGINE='zeebe' is not an engine" in result.stderr


def test_it_needs_a_server_url_for_the_conductor_engine():
    result = run_manage("check", WORKFLOW_ENGINE="conductor", CONDUCTOR_SERVER_URL="")
    assert result.returncode != 0
    assert "WORKFLOW_ENGINE=conductor needs CONDUCTOR_SERVER_URL" in result.stderr


def test_it_starts_with_the_conductor_engine_configured():
    result = run_manage("check", WORKFLOW_ENGINE="Conductor", CONDUCTOR_SERVER_URL="http://127.0.0.1:8080/api",
                        CONDUCTOR_RETRIES="3")
    assert result.returncode == 0, result.stderr
