"""The router as a real Celery worker process (queue "router") on Redis and PostgreSQL,
sending to the WEEX test server through ccxt, with the real quorum certificate check.

Proposals are evaluated and voted on in this process (two MPC nodes signing with their
own keys), so approval enqueues routing onto Redis exactly as in production."""

import json
import signal

import pytest

from exchange.models import Order
from exchange.services.orders import client_order_id_for
from governance.models import Proposal, VenueHealth
from governance.nodes import node_vote
from governance.services.evaluation import proposal_evaluate
from ledger.models import AuditEvent
from tests.builders import post_proposal
from tests.integration.workers import broker, start_worker, stop_worker, wait_for
from tests.weex_server import WeexTestServer

pytestmark = pytest.mark.integration

API_KEY, SECRET, PASSPHRASE = "it-key-51c0", "it-SECRET-9a7e33", "it-PASS-2b6d"


def router_env(server, **extra):
    return {
        "CHRONOSX_VENUE": "weex",
        "WEEX_API_KEY": API_KEY,
        "WEEX_API_SECRET": SECRET,
        "WEEX_API_PASSPHRASE": PASSPHRASE,
        "WEEX_BASE_URL": server.url,
        "CHRONOSX_VENUE_RATE_LIMIT": "0",
        "CHRONOSX_ROUTER_BACKOFF_SECONDS": "0.05",
        "CHRONOSX_NODE_KEY_DIR": "/nonexistent",  # the router holds no node key
        **extra,
    }


def approve(settings, api):
    """Post, evaluate, and have risk and portfolio sign approvals here: routing is enqueued on commit."""
    proposal = Proposal.objects.get(id=post_proposal(api).json()["id"])
    proposal_evaluate(proposal_id=proposal.id)
    for node in ("risk", "portfolio"):
        settings.CHRONOSX_NODE = node
        node_vote(proposal_id=proposal.id, node=node)
    settings.CHRONOSX_NODE = ""
    return proposal


def status(proposal):
    proposal.refresh_from_db()
    return proposal.status


def posts_for(server, cid):
    return [r for r in server.requests if r.method == "POST" and (r.json() or {}).get("newClientOrderId") == cid]


def test_a_router_worker_killed_mid_send_leaves_an_order_the_reconciler_settles_without_resending(
    api, trading_enabled, settings, tmp_path
):
    with WeexTestServer(api_key=API_KEY, secret=SECRET, passphrase=PASSPHRASE) as server, broker(settings):
        # 1. The venue accepts the order and then hangs; the router, patient, waits for it and is killed.
        server.timeout_sleep = 60
        server.inject("timeout_after_accept")
        router = start_worker(
            queues=["router"], name="router", log_dir=tmp_path, env=router_env(server, CHRONOSX_VENUE_TIMEOUT_MS="30000")
        )
        try:
            first = approve(settings, api)
            assert status(first) == "approved"
            cid = client_order_id_for(first.id)
            wait_for(lambda: posts_for(server, cid), timeout=60, what="the order to reach the venue")
            assert Order.objects.get(client_order_id=cid).status == "sending"
        finally:
            stop_worker(router, sig=signal.SIGKILL)
        assert server.order_count(cid) == 1

        # 2. A fresh router with the periodic reconciler takes over the stale order: it looks
        #    it up (found), records its fill, and never sends it again.
        rescuer = start_worker(
            queues=["router"], name="rescuer", log_dir=tmp_path, beat=True,
            env=router_env(
                server, CHRONOSX_VENUE_TIMEOUT_MS="300", CHRONOSX_ORDER_STALE_SECONDS="2",
                CHRONOSX_SWEEP_INTERVAL_SECONDS="1",
            ),
        )
        try:
            wait_for(lambda: status(first) == "filled", timeout=60, what="the reconciler to settle the order")
            assert len(posts_for(server, cid)) == 1
            lookups = [json.loads(e.payload)["result"] for e in AuditEvent.objects.filter(proposal_id=first.id, kind="order.lookup")]
            assert lookups[:2] == ["taken_over", "found"]

            # 3. The same worker routes more approvals through timeouts and 5xx after accept.
            server.timeout_sleep = 1
            more = []
            for fault in ["timeout_after_accept", "5xx_after_accept", None, "503_before_accept", "504_after_accept", None]:
                if fault:
                    server.inject(fault)
                more.append(approve(settings, api))
                wait_for(lambda: status(more[-1]) == "filled", timeout=30, what=f"a fill after {fault}")
        finally:
            stop_worker(rescuer)

        for proposal in [first, *more]:
            cid = client_order_id_for(proposal.id)
            assert server.order_count(cid) == 1
            order = Order.objects.get(client_order_id=cid)
            assert order.fills.count() == 1 and order.filled_quantity == order.quantity
        sent = [len(posts_for(server, client_order_id_for(p.id))) for p in more]
        assert sent == [1, 1, 1, 2, 1, 1]  # only the order the venue never got was sent twice


def test_the_execution_node_reads_the_venue_going_down_from_the_router_process(api, trading_enabled, settings, tmp_path):
    """Only the router holds credentials and talks to the venue. This process (the nodes)
    stays on the sandbox setting and never builds a venue; its execution node learns that
    WEEX is down from what the router process recorded, while risk and portfolio approve."""
    VenueHealth.objects.all().delete()  # nothing recorded but what the router records
    with WeexTestServer(api_key=API_KEY, secret=SECRET, passphrase=PASSPHRASE) as server, broker(settings):
        router = start_worker(queues=["router"], name="router", log_dir=tmp_path, env=router_env(server))
        try:
            wait_for(lambda: VenueHealth.objects.filter(venue="weex", healthy=True).exists(), timeout=60, what="a healthy probe")
            server.stop()
            wait_for(lambda: VenueHealth.objects.filter(venue="weex", healthy=False).exists(), timeout=30, what="the router to see it down")

            proposal = Proposal.objects.get(id=post_proposal(api).json()["id"])
            proposal_evaluate(proposal_id=proposal.id)
            votes = {}
            for node in ("risk", "portfolio", "execution"):
                settings.CHRONOSX_NODE = node
                votes[node] = node_vote(proposal_id=proposal.id, node=node)
            settings.CHRONOSX_NODE = ""
        finally:
            stop_worker(router)

    assert settings.CHRONOSX_VENUE == "sandbox"
    assert (votes["execution"].verdict, votes["execution"].reason) == ("reject", "venue unhealthy: weex (live) down")
    assert votes["risk"].verdict == votes["portfolio"].verdict == "approve"
