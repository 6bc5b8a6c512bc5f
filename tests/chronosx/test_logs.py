"""JSON log lines (the production stack's CHRONOSX_LOG_FORMAT=json): the request id of an HTTP
request, and the proposal id of every line a pipeline task writes."""

import io
import json
import logging
import logging.config

import pytest
from asgiref.sync import async_to_sync
from asgiref.testing import ApplicationCommunicator
from celery.signals import task_postrun, task_prerun

from chronosx.asgi import application  # django.setup() again: before the fixture's handler is added
from chronosx.logs import logging_config


@pytest.fixture
def json_log():
    """The root logger writing JSON lines into a buffer, as the stack configures it."""
    config = logging_config(json=True, level="INFO")
    stream = io.StringIO()
    formatter = logging.config.DictConfigurator(config).configure_formatter(config["formatters"]["main"])
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.addHandler(handler)
    yield lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    root.removeHandler(handler)


def asgi_get(path, headers=()):
    """One GET through the ASGI application that uvicorn serves, as nginx would send it."""
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET", "scheme": "http",
        "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "",
        "headers": [(b"host", b"127.0.0.1"), *headers], "client": ("127.0.0.1", 40000), "server": ("127.0.0.1", 8000),
    }

    async def run():
        communicator = ApplicationCommunicator(application, scope)
        await communicator.send_input({"type": "http.request", "body": b"", "more_body": False})
        start = await communicator.receive_output(timeout=10)
        await communicator.receive_output(timeout=10)
        return start

    return async_to_sync(run)()


@pytest.mark.django_db
def test_every_line_of_a_request_carries_its_request_id(json_log):
    start = asgi_get("/api/v1/no-such-thing/", [(b"x-request-id", b"nginx-rid-1")])
    logging.getLogger("chronosx.test").info("outside any request")

    assert start["status"] == 404
    assert (b"X-Request-ID", b"nginx-rid-1") in start["headers"]
    lines = json_log()
    assert any(line.get("request_id") == "nginx-rid-1" and line["logger"] == "django.request" for line in lines), lines
    assert lines[-1]["event"] == "outside any request" and "request_id" not in lines[-1]


def test_a_request_id_that_is_not_plain_is_replaced(client):
    response = client.get("/api/v1/health/", HTTP_X_REQUEST_ID="bad id\nwith a newline")

    assert response["X-Request-ID"] != "bad id\nwith a newline" and len(response["X-Request-ID"]) == 32


class FakeTask:
    def __init__(self, name):
        self.name = name


def test_every_line_of_a_pipeline_task_carries_its_proposal_id(json_log):
    task = FakeTask("governance.vote")
    task_prerun.send(sender=task, task_id="t-1", task=task, args=["7f1c0a8e-proposal", "risk"], kwargs={})
    logging.getLogger("governance.services.quorum").warning("vote refused")
    task_postrun.send(sender=task, task_id="t-1", task=task, args=[], kwargs={}, retval=None, state="SUCCESS")
    logging.getLogger("governance.services.quorum").info("after the task")

    during, after = json_log()
    assert during["proposal_id"] == "7f1c0a8e-proposal" and during["task"] == "governance.vote"
    assert during["level"] == "warning" and during["event"] == "vote refused" and "timestamp" in during
    assert "proposal_id" not in after
