"""README "Production serving" as the tests run it: its variables, and commands in a production environment.

The variables come from the section's own `export` lines, so a test of "the documented variables" cannot
drift from the documentation. Only the secret key is replaced (the README generates one in the shell).
"""

import os
import re
import secrets
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Everything a test sets or removes, so that the caller's own environment (a developer's shell) cannot
# turn a setting on or off behind the test's back.
PRODUCTION_VARIABLES = (
    "DATABASE_URL", "SECRET_KEY", "DEBUG", "ALLOWED_HOSTS", "CSRF_TRUSTED_ORIGINS", "SECURE_PROXY_SSL_HEADER",
    "SECURE_SSL_REDIRECT", "SECURE_HSTS_SECONDS", "SECURE_HSTS_INCLUDE_SUBDOMAINS", "SECURE_HSTS_PRELOAD",
    "SESSION_COOKIE_SECURE", "CSRF_COOKIE_SECURE", "PORT", "WEB_CONCURRENCY", "WEB_THREADS",
)


def readme_section(title: str = "Production serving") -> str:
    text = (ROOT / "README.md").read_text()
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start:end]


def documented_environment() -> dict[str, str]:
    """NAME=value of each `export` line of the section, the secret key a fresh random one."""
    variables = {}
    for line in readme_section().splitlines():
        if line.startswith("export "):
            variables.update(re.findall(r"\b([A-Z][A-Z0-9_]*)=(\S+)", line.split(" #")[0]))
    variables["SECRET_KEY"] = secrets.token_urlsafe(50)
    return variables


def environment(**variables: str) -> dict[str, str]:
    """This process's environment without any production variable or settings module, plus `variables`."""
    env = {name: value for name, value in os.environ.items() if name not in PRODUCTION_VARIABLES}
    env.pop("DJANGO_SETTINGS_MODULE", None)  # eventhub.settings, as in production, not the suite's
    return {**env, **variables}


def run_manage(*args: str, **variables: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=environment(**variables),
                          capture_output=True, text=True, timeout=120)
