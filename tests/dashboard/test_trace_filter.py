"""The dashboard's trace: searched, filtered and paged, and the filters survive a refresh."""

import re
from datetime import timedelta

from django.utils import timezone

from tests.builders import approved_proposal
from tests.dashboard.test_views import partial, text


def row_ids(html):
    return re.findall(r'<tr class="proposal[^"]*" id="proposal-([0-9a-f-]+)"', html)


def summary(html):
    return re.search(r"newest first: (\S+ of \d+)", text(html)).group(1)


def test_the_trace_filters_by_status_decision_strategy_and_id(staff_client, trace_data):
    assert row_ids(partial(staff_client, "proposals", status="blocked")) == [trace_data["blocked_id"]]
    assert row_ids(partial(staff_client, "proposals", outcome="approve")) == [trace_data["approved_id"]]
    assert row_ids(partial(staff_client, "proposals", outcome="modify")) == []
    assert len(row_ids(partial(staff_client, "proposals", strategy="demo", symbol="BTCUSDT"))) == 2
    assert row_ids(partial(staff_client, "proposals", q=trace_data["approved_id"][:8])) == [trace_data["approved_id"]]
    tomorrow = (timezone.now() + timedelta(days=1)).date().isoformat()
    html = partial(staff_client, "proposals", since=tomorrow)
    assert row_ids(html) == [] and "no proposal matches these filters" in html


def test_values_that_are_not_choices_are_ignored_not_trusted(staff_client, trace_data):
    html = partial(staff_client, "proposals", status="'; drop table", outcome="nope", since="not-a-date", page="x")
    assert len(row_ids(html)) == 2 and summary(html) == "1–2 of 2"


def test_the_trace_pages_twenty_at_a_time_newest_first(staff_client, api):
    made = [str(approved_proposal(agent=api.agent).id) for _ in range(23)]
    first = partial(staff_client, "proposals")
    assert len(row_ids(first)) == 20 and summary(first) == "1–20 of 23"
    assert "page 1 of 2" in text(first) and "older →" in first and "← newer" not in first
    second = partial(staff_client, "proposals", page=2)
    assert summary(second) == "21–23 of 23" and set(row_ids(first)) | set(row_ids(second)) == set(made)
    assert '<input type="hidden" id="trace-page" name="page" value="2" hx-swap-oob="true">' in second
    assert summary(partial(staff_client, "proposals", page=99)) == "21–23 of 23"  # clamped to the last page


def test_the_page_wires_the_filter_into_every_refresh(staff_client):
    html = staff_client.get("/").content.decode()
    assert 'hx-include="#trace-selected, #trace-page, #trace-filter"' in html
    assert re.search(r'<form class="trace-filter" id="trace-filter"[^>]*hx-get="/dashboard/partials/proposals/"', html)
