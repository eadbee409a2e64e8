"""Fuzz the whole API from its own OpenAPI schema with schemathesis, against a live server.

`make fuzz` runs the same test with many more examples; FUZZ_EXAMPLES sets how many per operation.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from drf_spectacular.generators import SchemaGenerator

from eventhub.lib.api.auth import issue_token
from handlers.models import ApiKey

# Everything but positive_data_acceptance: some rules (a condition that compiles, a known
# evaluator with its condition) go beyond what JSON Schema can say, and are answered with a 400.
CHECKS = (
    "not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,"
    "response_schema_conformance,negative_data_rejection,missing_required_header,unsupported_method,"
    "use_after_free,ensure_resource_availability,ignored_auth"
)


@pytest.mark.django_db(transaction=True)
def test_fuzzing_the_api_finds_no_server_error_and_no_response_off_schema(live_server, superuser, tmp_path: Path):
    schema = SchemaGenerator().get_schema(request=None, public=True)
    schema_file = tmp_path / "openapi.json"
    schema_file.write_text(json.dumps(schema))
    key, _ = ApiKey.issue(superuser, "fuzzer")
    examples = os.environ.get("FUZZ_EXAMPLES", "15")
    result = subprocess.run(
        [str(Path(sys.executable).parent / "schemathesis"), "run", str(schema_file), "--url", live_server.url,
         "-H", f"X-Authorization: {issue_token(key)}", "--checks", CHECKS, "--max-examples", examples,
         "--workers", "1", "--seed", os.environ.get("FUZZ_SEED", "1")],
        capture_output=True, text=True, timeout=1200, env={**os.environ, "NO_COLOR": "1"},
    )
    summary = result.stdout[result.stdout.rfind("Test cases:"):]
    print(summary)
    assert result.returncode == 0, result.stdout[-6000:]
    assert " generated, " in summary and " passed" in summary
