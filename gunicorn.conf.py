"""Gunicorn's configuration: the production web server (Procfile.production, README "Production serving").

The database bound: a worker process runs WEB_THREADS threads, only those threads run Django, and Django
keeps one connection per thread (for CONN_MAX_AGE seconds, then opens a new one in its place). So the
web processes hold at most WEB_CONCURRENCY × WEB_THREADS PostgreSQL connections, 16 at the defaults,
however many requests arrive: requests beyond the threads wait for one, they do not open connections.
(runserver starts a thread per request, and each leaves its connection open behind it.)

Command-line options override these, e.g. `--bind 127.0.0.1:9000`.
"""

from eventhub.settings import env_int

wsgi_app = "eventhub.wsgi:application"
# PaaS platforms and honcho hand each process its port in PORT.
bind = [f"0.0.0.0:{env_int('PORT', 8000, minimum=1, maximum=65535)}"]
worker_class = "gthread"
workers = env_int("WEB_CONCURRENCY", 2, minimum=1)
threads = env_int("WEB_THREADS", 8, minimum=1)
# No run-time control socket: it could add workers past the bound above, and it sits at one path per user,
# so a second gunicorn on the machine would take it over.
control_socket_disable = True
accesslog = "-"  # one line per request on stdout, next to the application's log on stderr
