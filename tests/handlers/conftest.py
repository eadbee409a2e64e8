# The broker fixtures of the queue tests, for the end-to-end and crash tests of dispatch.
from ..queues.conftest import make_config, providers, sqs_server  # noqa: F401
