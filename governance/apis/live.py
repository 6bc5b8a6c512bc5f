"""Answers that wait for the pipeline: `Prefer: wait=N` on the proposal endpoints, and the
server-sent event stream GET /api/v1/stream/.

Neither holds a database connection or a thread while it waits. Under ASGI (uvicorn) the
waiting is on the event loop, and one poller per process reads for every waiter at once:
one query per round for the statuses of every awaited proposal, one for the events of every
open stream. On PostgreSQL the event poller reads when the sequencer says it has linked
events (NOTIFY, on one listening connection per process), so an event goes out as soon as
it is chained. Under WSGI (runserver, the embedded default) a waiting request holds its own
thread, polling, which is what WSGI can do.
"""

import asyncio
import logging
import time
import uuid
import weakref
from concurrent.futures import ThreadPoolExecutor
from functools import partial

import psycopg
from asgiref.sync import sync_to_async
from django.db import DatabaseError, connection
from django.http import StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.views import APIView

from chronosx.canonical import canonical_json
from governance import schema as oas
from governance.apis.proposals import ProposalDetailApi, ProposalListCreateApi
from governance.models import Proposal
from governance.selectors.events import agent_strategy_ids, chain_head_seq, event_data, events_after, stream_type
from governance.selectors.proposals import proposal_get
from governance.serializers import ProposalSerializer
from ledger.services import AUDIT_CHAINED_CHANNEL

log = logging.getLogger(__name__)

MAX_WAIT_SECONDS = 30
FINAL = frozenset(
    {Proposal.Status.BLOCKED, Proposal.Status.EXPIRED, Proposal.Status.FILLED, Proposal.Status.REJECTED, Proposal.Status.CANCELLED}
)
POLL_SECONDS = 0.05  # how often the shared pollers read while anyone waits
WSGI_POLL_SECONDS = 0.2
EVENTS_PER_READ = 1000
HEARTBEAT_SECONDS = 15
# With a listening connection the event poller also reads this often without a notification
# (one lost with a dropped connection, or linked by a sequencer that could not notify).
CHAINED_FALLBACK_SECONDS = 1.0
LISTEN_RETRY_SECONDS = 5.0
READ_RETRY_SECONDS = 1.0  # a poller's pause after a failed read


# --- Prefer: wait=N (RFC 7240) -----------------------------------------------------------


def preferred_wait(request) -> tuple[int | None, frozenset]:
    """(seconds, statuses that end the wait) from the Prefer header; (None, …) without `wait`.
    An unreadable preference is ignored, as RFC 7240 asks; a wait over 30 s is cut to 30."""
    seconds, until = None, FINAL
    for preference in request.headers.get("Prefer", "").split(","):
        name, _, value = preference.strip().partition("=")
        name, value = name.strip().lower(), value.strip().strip('"')
        if name == "wait" and value.isascii() and value.isdigit() and len(value) <= 6:
            seconds = min(int(value), MAX_WAIT_SECONDS)
        elif name == "return" and value.lower() == "approved":
            until = FINAL | {Proposal.Status.APPROVED}
    return seconds, until


class _Reader:
    """A poller's reads run on one thread of its own: one database connection while anyone
    waits, closed when nobody does."""

    def __init__(self, loop):
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="chronosx-live")
        weakref.finalize(loop, self.executor.shutdown, wait=False)

    async def read(self, function, *args, what: str):
        """`function(*args)` on the reader's thread; None, after a pause, when the database
        failed: the poller's waiters and streams stay, and its next round reads again."""
        try:
            return await asyncio.get_running_loop().run_in_executor(self.executor, partial(function, *args))
        except DatabaseError:
            log.warning("%s: reading failed; retrying in %s s", what, READ_RETRY_SECONDS, exc_info=True)
            await asyncio.sleep(READ_RETRY_SECONDS)
            return None

    def idle(self):
        """Close the reader thread's connection once what it is reading is done (the thread runs
        one job at a time, in order). Not awaited: under WSGI a request's loop ends by cancelling
        its tasks, and a cancelled wait would cancel the close with it."""
        self.executor.submit(_close_own_connection)


class _StatusWatch:
    """Every proposal awaited on one event loop, read in one query per round."""

    def __init__(self, loop):
        self.waiters: dict[uuid.UUID, list[tuple[frozenset, asyncio.Future]]] = {}
        self.task = None
        self.reader = _Reader(loop)

    async def until(self, proposal_id: uuid.UUID, statuses: frozenset, seconds: float) -> None:
        future = asyncio.get_running_loop().create_future()
        entry = (statuses, future)
        self.waiters.setdefault(proposal_id, []).append(entry)
        if self.task is None or self.task.done():
            self.task = asyncio.ensure_future(self._poll())
        try:
            await asyncio.wait_for(future, timeout=seconds)
        except asyncio.TimeoutError:
            pass
        finally:
            entries = self.waiters.get(proposal_id, [])
            if entry in entries:
                entries.remove(entry)
            if not entries:
                self.waiters.pop(proposal_id, None)

    async def _poll(self):
        try:
            while self.waiters:
                statuses = await self.reader.read(_statuses, list(self.waiters), what="wait")
                if statuses is None:
                    continue  # the waiters wait on, to their own time-out at most
                for proposal_id, status in statuses.items():
                    for wanted, future in self.waiters.get(proposal_id, []):
                        if status in wanted and not future.done():
                            future.set_result(status)
                await asyncio.sleep(POLL_SECONDS)
        finally:
            self.reader.idle()


def _reader_connection() -> None:
    """The poller's thread keeps its connection from one read to the next (idle() closes it
    when nobody waits): the web tier's per-request close (CONN_MAX_AGE 0) would otherwise open
    a new PostgreSQL connection for every round. One that failed is replaced."""
    if connection.errors_occurred:
        if connection.connection is not None and connection.is_usable():
            connection.errors_occurred = False
        else:
            connection.close()


def _close_own_connection() -> None:
    """Close the calling thread's connection. Run on the reader's thread, it must name the
    connection there: `connection.close` taken on the event loop's thread is that thread's."""
    connection.close()


def _statuses(ids) -> dict:
    _reader_connection()
    return dict(Proposal.objects.filter(id__in=ids).values_list("id", "status"))


def _for_this_loop(registry: weakref.WeakKeyDictionary, make):
    """The one `make(loop)` of the running event loop (ASGI: one per process; WSGI: one per request)."""
    loop = asyncio.get_running_loop()
    if loop not in registry:
        registry[loop] = make(loop)
    return registry[loop]


_watches: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _StatusWatch]" = weakref.WeakKeyDictionary()


def _answer(view, request, *args, **kwargs):
    """The plain answer; the request's connection is given back before any wait."""
    response = view(request, *args, **kwargs)
    connection.close()
    return response


def _current(agent, proposal_id) -> dict:
    try:
        return ProposalSerializer(proposal_get(agent=agent, proposal_id=proposal_id)).data
    finally:
        connection.close()


async def _waiting(request, view, *args, **kwargs):
    seconds, until = preferred_wait(request)
    if seconds is None:
        return await sync_to_async(view)(request, *args, **kwargs)
    started = time.monotonic()
    response = await sync_to_async(_answer)(view, request, *args, **kwargs)
    if response.status_code not in (200, 202) or not isinstance(getattr(response, "data", None), dict):
        return response
    if response.data.get("status") not in until:
        proposal_id = uuid.UUID(str(response.data["id"]))
        await _for_this_loop(_watches, _StatusWatch).until(proposal_id, until, max(0.0, seconds - (time.monotonic() - started)))
        agent = response.renderer_context["request"].user
        response.data = await sync_to_async(_current)(agent, proposal_id)
    response["Preference-Applied"] = f"wait={seconds}"
    return response


_list_create = ProposalListCreateApi.as_view()
_detail = ProposalDetailApi.as_view()


async def proposals_endpoint(request):
    return await _waiting(request, _list_create)


async def proposal_detail_endpoint(request, proposal_id):
    return await _waiting(request, _detail, proposal_id=proposal_id)


# Both keep the DRF views' schema; the Prefer header is documented on them.
for endpoint, view in ((proposals_endpoint, _list_create), (proposal_detail_endpoint, _detail)):
    endpoint.cls, endpoint.initkwargs, endpoint.csrf_exempt = view.cls, view.initkwargs, True


# --- GET /api/v1/stream/ ----------------------------------------------------------------


def sse_event(row: dict) -> str:
    # Written once per event and kept on the row, which the tail shares among every stream it goes to.
    if "sse" not in row:
        row["sse"] = f"id: {row['seq']}\nevent: {stream_type(row['kind'])}\ndata: {canonical_json(event_data(row))}\n\n"
    return row["sse"]


def _conninfo() -> str:
    s = connection.settings_dict
    options = {k: v for k, v in s.get("OPTIONS", {}).items() if isinstance(v, str)}
    return psycopg.conninfo.make_conninfo(
        dbname=s["NAME"], user=s["USER"], password=s["PASSWORD"], host=s["HOST"] or None, port=s["PORT"] or None,
        **options,
    )


class _ChainedSignal:
    """Waits on the event loop for the sequencer's NOTIFY that it linked events (PostgreSQL).
    Without PostgreSQL, or while its connection cannot be had, waiting is a POLL_SECONDS sleep."""

    def __init__(self):
        self.listener: psycopg.AsyncConnection | None = None
        self.retry_at = 0.0

    async def wait(self, *, interrupted) -> None:
        """Until a notification, CHAINED_FALLBACK_SECONDS, or `interrupted()` turns true (checked
        every POLL_SECONDS, without a query: a stream just opened is owed its backlog at once)."""
        if self.listener is None and connection.vendor == "postgresql" and time.monotonic() >= self.retry_at:
            try:
                self.listener = await psycopg.AsyncConnection.connect(_conninfo(), autocommit=True)
                await self.listener.execute(f"LISTEN {AUDIT_CHAINED_CHANNEL}")
                return  # read once more: what was linked before LISTEN took effect sent no notification here
            except psycopg.Error:
                log.warning("stream: cannot listen for chained events; polling every %s s", POLL_SECONDS, exc_info=True)
                await self.close()
                self.retry_at = time.monotonic() + LISTEN_RETRY_SECONDS
        if self.listener is None:
            await asyncio.sleep(POLL_SECONDS)
            return
        deadline = time.monotonic() + CHAINED_FALLBACK_SECONDS
        try:
            # A notification sent while the tail was reading waits in the socket: none is missed.
            while time.monotonic() < deadline and not interrupted():
                if [n async for n in self.listener.notifies(timeout=POLL_SECONDS, stop_after=1)]:
                    return
        except psycopg.Error:
            log.warning("stream: the listening connection failed", exc_info=True)
            await self.close()

    async def close(self) -> None:
        listener, self.listener = self.listener, None
        if listener is not None:
            try:
                await listener.close()
            except psycopg.Error:
                pass


class _Stream:
    def __init__(self, cursor: int, strategies):
        self.cursor = cursor
        self.strategies = None if strategies is None else frozenset(strategies)
        self.queue: asyncio.Queue = asyncio.Queue()


class _EventTail:
    """The chained audit trail, read once per round for every stream open on one event loop."""

    def __init__(self, loop):
        self.streams: set[_Stream] = set()
        self.task = None
        self.reader = _Reader(loop)
        self.chained = _ChainedSignal()
        self.opened = False  # a stream opened since the last read

    def open(self, cursor: int, strategies) -> _Stream:
        stream = _Stream(cursor, strategies)
        self.streams.add(stream)
        self.opened = True
        if self.task is None or self.task.done():
            self.task = asyncio.ensure_future(self._poll())
        return stream

    def close(self, stream: _Stream):
        self.streams.discard(stream)

    async def _poll(self):
        try:
            while self.streams:
                # A stream still sending its last batches is left out of this round.
                ready = [s for s in self.streams if s.queue.qsize() < 4]
                rows, last, self.opened = [], None, False
                if ready:
                    read = await self.reader.read(_events, min(s.cursor for s in ready), what="stream")
                    if read is None:
                        continue  # the streams stay open and resume where they were
                    rows, last = read
                    # Streams at the same point with the same strategies (every staff stream, most
                    # agents' streams) get one text, built once: 200 streams cost one filter each.
                    texts: dict[tuple, bytes] = {}
                    for stream in ready:
                        key = (stream.cursor, stream.strategies)
                        if key not in texts:
                            texts[key] = "".join(
                                sse_event(row) for row in rows
                                if row["seq"] > stream.cursor
                                and (stream.strategies is None or row["strategy_id"] in stream.strategies)
                            ).encode()
                        if texts[key]:
                            stream.queue.put_nowait(texts[key])
                        stream.cursor = max(stream.cursor, last)
                if len(ready) < len(self.streams):
                    await asyncio.sleep(POLL_SECONDS)  # the streams left out catch up by polling
                elif len(rows) < EVENTS_PER_READ:
                    await self.chained.wait(interrupted=lambda: self.opened)
        finally:
            self.reader.idle()
            await self.chained.close()


def _events(low: int):
    _reader_connection()
    return events_after(seq=low, limit=EVENTS_PER_READ)


_tails: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _EventTail]" = weakref.WeakKeyDictionary()


async def _stream_async(cursor: int, strategies):
    tail = _for_this_loop(_tails, _EventTail)
    stream = tail.open(cursor, strategies)
    try:
        yield ": stream open\n\n"
        while True:
            try:
                async with asyncio.timeout(HEARTBEAT_SECONDS):
                    text = await stream.queue.get()
            except TimeoutError:
                yield ": keep-alive\n\n"
                continue
            yield text
    finally:
        tail.close(stream)


def _stream_sync(cursor: int, strategies):
    yield ": stream open\n\n"
    quiet_since = time.monotonic()
    while True:
        rows, last = events_after(seq=cursor, limit=EVENTS_PER_READ)
        batch = [row for row in rows if strategies is None or row["strategy_id"] in strategies]
        cursor = max(cursor, last)
        if batch:
            quiet_since = time.monotonic()
            yield "".join(sse_event(row) for row in batch)
        elif time.monotonic() - quiet_since >= HEARTBEAT_SECONDS:
            quiet_since = time.monotonic()
            yield ": keep-alive\n\n"
        if len(rows) < EVENTS_PER_READ:
            time.sleep(WSGI_POLL_SECONDS)


class _AnyAccept(BaseContentNegotiation):
    """An SSE client (a browser's EventSource among them) sends `Accept: text/event-stream`,
    which no DRF renderer names: the stream is not rendered by DRF, and an error answer before
    it starts is the JSON envelope whatever the client accepts."""

    def select_parser(self, request, parsers):
        return parsers[0]

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type


class StreamApi(APIView):
    content_negotiation_class = _AnyAccept

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "Last-Event-ID", OpenApiTypes.INT, OpenApiParameter.HEADER, required=False,
                description="resume after this event id (without it: from now on)",
            ),
            *oas.error_headers(*oas.AUTHENTICATED),
        ],
        responses={
            (200, "text/event-stream"): OpenApiResponse(
                OpenApiTypes.STR,
                description="`id:` strictly increasing, `event:` proposal | decision | vote | order | fill, "
                "`data:` that object's JSON with `proposal_id`; `:` comment lines are heartbeats",
            ),
            **oas.error_responses(*oas.AUTHENTICATED),
        },
        summary="The agent's events as server-sent events (staff tokens: every agent's)",
    )
    def get(self, request):
        strategies = agent_strategy_ids(agent=request.user)
        last = request.headers.get("Last-Event-ID", "").strip()
        cursor = int(last) if last.isascii() and last.isdigit() and len(last) <= 18 else chain_head_seq()
        if hasattr(request._request, "scope"):  # ASGI: wait on the event loop
            content = _stream_async(cursor, strategies)
            connection.close()  # this request's thread is done with the database
        else:
            content = _stream_sync(cursor, strategies)
        response = StreamingHttpResponse(content, content_type="text/event-stream")
        response["Cache-Control"] = "no-cache"
        response["X-Accel-Buffering"] = "no"  # nginx: pass each event on as it comes
        return response
