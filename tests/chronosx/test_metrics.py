"""/metrics: the pipeline's counters and stage latency histograms, on loopback only."""

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.builders import post_proposal, proposal_body


def samples(client) -> dict:
    response = client.get("/metrics", REMOTE_ADDR="127.0.0.1")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    found = {}
    for family in text_string_to_metric_families(response.content.decode()):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def delta(before, after, name, **labels):
    key = (name, tuple(sorted(labels.items())))
    return after.get(key, 0) - before.get(key, 0)


@pytest.mark.django_db
def test_it_counts_a_proposal_through_decision_votes_order_and_fill(client, api, trading_enabled):
    before = samples(client)

    response = post_proposal(api)

    assert response.status_code in (200, 202) and response.json()["status"] == "filled"  # embedded: all in-process
    after = samples(client)
    assert delta(before, after, "chronosx_proposals_total") == 1
    assert delta(before, after, "chronosx_decisions_total", outcome="approve") == 1
    for node in ("risk", "portfolio", "execution"):
        assert delta(before, after, "chronosx_votes_total", node=node, verdict="approve") == 1
    assert delta(before, after, "chronosx_orders_total", status="filled") == 1
    assert delta(before, after, "chronosx_proposal_status_total", status="filled") == 1
    for stage in ("decided", "approved", "filled"):
        assert delta(before, after, "chronosx_stage_seconds_count", stage=stage) == 1
        assert delta(before, after, "chronosx_stage_seconds_bucket", stage=stage, le="+Inf") == 1


@pytest.mark.django_db
def test_a_blocked_proposal_counts_as_a_block_with_no_vote(client, api, seeded):
    before = samples(client)

    assert post_proposal(api).json()["status"] == "blocked"  # trading halted by default

    after = samples(client)
    assert delta(before, after, "chronosx_decisions_total", outcome="block") == 1
    assert delta(before, after, "chronosx_proposal_status_total", status="blocked") == 1
    assert not any(delta(before, after, "chronosx_votes_total", node=n, verdict="approve") for n in ("risk", "portfolio", "execution"))


@pytest.mark.django_db
def test_an_idempotent_repeat_is_not_counted_again(client, api, seeded):
    body = proposal_body()
    post_proposal(api, body, key="same-key")
    before = samples(client)

    assert post_proposal(api, body, key="same-key").status_code == 200

    assert delta(before, samples(client), "chronosx_proposals_total") == 0


@pytest.mark.parametrize(
    "meta",
    [{"REMOTE_ADDR": "10.1.2.3"}, {"REMOTE_ADDR": "127.0.0.1", "HTTP_X_FORWARDED_FOR": "203.0.113.9"}],
    ids=["not-loopback", "through-a-proxy"],
)
def test_metrics_answer_only_on_loopback_and_never_through_a_proxy(client, meta):
    response = client.get("/metrics", **meta)

    assert response.status_code == 404
    assert b"chronosx_" not in response.content
