"""Readiness of a process's database (reachable, and every migration applied), and the probes that ask it.

Once the migrations were found applied they are not read again (they are never undone under a running
process); the connection is tried on every call.
"""

from django.db import DatabaseError, connection
from django.db.migrations.executor import MigrationExecutor
from django.http import HttpResponse

_migrated = False


def database_problem() -> str:
    """Why the database cannot serve this process, or "" when it can."""
    global _migrated
    try:
        connection.ensure_connection()
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        if not _migrated:
            executor = MigrationExecutor(connection)
            missing = executor.migration_plan(executor.loader.graph.leaf_nodes())
            if missing:
                return f"{len(missing)} migration(s) not applied, e.g. {missing[0][0]}; run manage.py migrate"
            _migrated = True
    except DatabaseError as exc:
        connection.close()  # a broken connection is made anew on the next try
        return f"database unreachable: {exc}".strip()
    return ""


class Probes:
    """Middleware, first in the list: `/healthz` (the process answers; nothing else is asked) and `/readyz`
    (503 with the reason unless the database serves). Answered before anything checks the Host header:
    load balancers and Kubernetes probe by address, which ALLOWED_HOSTS rightly does not list."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if request.path_info == "/healthz":
            return HttpResponse("ok\n", content_type="text/plain; charset=utf-8")
        if request.path_info == "/readyz":
            problem = database_problem()
            return HttpResponse(f"{problem or 'ready'}\n", status=503 if problem else 200,
                                content_type="text/plain; charset=utf-8")
        return self.get_response(request)
