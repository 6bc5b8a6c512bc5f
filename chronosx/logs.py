"""Logs: one JSON object per line on the production stack (structlog), plain text otherwise.

Every line carries what the context knows: `request_id` during an HTTP request (nginx's
X-Request-ID, or a new one, echoed in the answer's X-Request-ID), and during a pipeline
task (evaluate, vote, route) the task's name and id and the `proposal_id` it works on, so
`grep PROPOSAL_ID` over every process's log follows one proposal through the stack.
Lines written with the standard `logging` module (Django's, Celery's, ours) go through
the same processors as structlog's own.
"""

import os
import re
import uuid

import structlog
from asgiref.sync import iscoroutinefunction
from celery.signals import task_postrun, task_prerun
from django.utils.decorators import sync_and_async_middleware

REQUEST_ID_HEADER = "HTTP_X_REQUEST_ID"
REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
# Tasks whose first argument is the proposal they work on.
PIPELINE_TASKS = {"governance.evaluate", "governance.vote", "exchange.route"}

def _add_process(logger, method_name, event_dict):
    """Which of the stack's programs wrote the line (CHRONOSX_PROCESS: web, governance, node-risk, …)."""
    if PROCESS:
        event_dict.setdefault("process", PROCESS)
    return event_dict


PROCESS = os.environ.get("CHRONOSX_PROCESS", "")
_SHARED = [
    structlog.contextvars.merge_contextvars,
    _add_process,
    structlog.stdlib.add_log_level,
    structlog.stdlib.add_logger_name,
    structlog.stdlib.ExtraAdder(),
    structlog.processors.TimeStamper(fmt="iso", utc=True),
]


def logging_config(*, json: bool, level: str) -> dict:
    """The LOGGING setting, and structlog configured to go through it."""
    structlog.configure(
        processors=[structlog.stdlib.filter_by_level, *_SHARED, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    if json:
        formatter = {
            "()": structlog.stdlib.ProcessorFormatter,
            "foreign_pre_chain": _SHARED,
            "processors": [
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                structlog.processors.JSONRenderer(),
            ],
        }
    else:  # the embedded default and test runs: as readable as before
        formatter = {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"main": formatter},
        "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "main"}},
        "root": {"handlers": ["console"], "level": level},
        "loggers": {"ccxt": {"level": "WARNING"}},
    }


def asgi_request_ids(application):
    """Wraps the ASGI application: the request id is bound before Django sees the request, so
    that Django's own lines about it (django.request: 404s, 500s) carry it too."""

    async def with_request_id(scope, receive, send):
        if scope["type"] != "http":
            return await application(scope, receive, send)
        given = dict(scope.get("headers") or ()).get(b"x-request-id", b"").decode("latin-1")
        with structlog.contextvars.bound_contextvars(request_id=given if REQUEST_ID.match(given) else uuid.uuid4().hex):
            return await application(scope, receive, send)

    return with_request_id


def _request_id(request) -> str:
    bound = structlog.contextvars.get_contextvars().get("request_id")
    if bound:
        return bound
    given = request.META.get(REQUEST_ID_HEADER, "")
    return given if REQUEST_ID.match(given) else uuid.uuid4().hex


@sync_and_async_middleware
def request_id_middleware(get_response):
    """Binds `request_id` to every log line of the request (the one the ASGI wrapper bound, or
    nginx's X-Request-ID, or a new one) and returns it as X-Request-ID."""
    if iscoroutinefunction(get_response):

        async def middleware(request):
            request_id = _request_id(request)
            with structlog.contextvars.bound_contextvars(request_id=request_id):
                response = await get_response(request)
            response["X-Request-ID"] = request_id
            return response

    else:

        def middleware(request):
            request_id = _request_id(request)
            with structlog.contextvars.bound_contextvars(request_id=request_id):
                response = get_response(request)
            response["X-Request-ID"] = request_id
            return response

    return middleware


_task_tokens: dict = {}


@task_prerun.connect
def _bind_task(task_id=None, task=None, args=None, **kwargs):
    fields = {"task": task.name, "task_id": task_id}
    if task.name in PIPELINE_TASKS and args:
        fields["proposal_id"] = str(args[0])
    _task_tokens[task_id] = structlog.contextvars.bind_contextvars(**fields)


@task_postrun.connect
def _unbind_task(task_id=None, **kwargs):
    tokens = _task_tokens.pop(task_id, None)
    if tokens:
        structlog.contextvars.reset_contextvars(**tokens)
