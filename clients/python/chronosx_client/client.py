"""The ChronosX agent API as Python calls.

An agent proposes; ChronosX decides. A proposal is sent with an idempotency key made for it
and reused on every retry, so a retry after a lost answer never makes a second proposal.
429 and 503 answers are retried after their `Retry-After`, connection failures with backoff.
"""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import requests

from chronosx_client.errors import ChronosXError, Unreachable, error_for

FINAL = frozenset({"blocked", "expired", "filled", "rejected", "cancelled"})
RETRIED_STATUSES = (429, 503)
MAX_WAIT_SECONDS = 30


@dataclass(frozen=True)
class Event:
    """One server-sent event of GET /api/v1/stream/."""

    id: int
    kind: str  # proposal, decision, vote, order, fill
    data: dict


class Client:
    def __init__(self, base_url: str, token: str, *, timeout: float = 10.0, retries: int = 5,
                 backoff: float = 0.5, max_backoff: float = 30.0, session: requests.Session | None = None):
        self.base_url = base_url.rstrip("/")
        self.timeout, self.retries, self.backoff, self.max_backoff = timeout, retries, backoff, max_backoff
        self.session = session or requests.Session()
        self.session.headers["Authorization"] = f"Token {token}"

    # --- proposals ----------------------------------------------------------------------

    def propose(self, *, strategy: str, symbol: str, side: str, quantity: str, order_type: str,
                reference_price: str, confidence: float, signal_time: str, expected_slippage_bps: float = 0,
                limit_price: str | None = None, intent: str = "open", idempotency_key: str | None = None,
                wait: int | None = None, until_approved: bool = False) -> dict:
        """POST a proposal; the proposal as ChronosX answers it. Decimals are strings.

        `wait` (seconds, at most 30) holds the answer until the proposal is final, or with
        `until_approved` until it is approved or final, or the time runs out."""
        body: dict[str, Any] = {
            "strategy": strategy, "symbol": symbol, "side": side, "quantity": quantity, "order_type": order_type,
            "reference_price": reference_price, "expected_slippage_bps": expected_slippage_bps,
            "confidence": confidence, "signal_time": signal_time, "intent": intent,
        }
        if limit_price is not None:
            body["limit_price"] = limit_price
        headers = {"Idempotency-Key": idempotency_key or uuid.uuid4().hex, **_prefer(wait, until_approved)}
        return self._request("POST", "/api/v1/proposals/", json=body, headers=headers, waiting=wait)

    def proposal(self, proposal_id: str, *, wait: int | None = None, until_approved: bool = False) -> dict:
        return self._request("GET", f"/api/v1/proposals/{proposal_id}/", headers=_prefer(wait, until_approved),
                             waiting=wait)

    def wait_final(self, proposal_id: str, *, timeout: float = 60, until_approved: bool = False) -> dict:
        """The proposal once final (or approved), asking with `Prefer: wait` until `timeout`."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            proposal = self.proposal(proposal_id, wait=max(1, min(MAX_WAIT_SECONDS, int(remaining))),
                                     until_approved=until_approved)
            if _done(proposal, until_approved) or time.monotonic() >= deadline:
                return proposal

    def proposals(self, *, strategy: str | None = None, status: str | None = None, limit: int | None = None) -> list:
        params = {k: v for k, v in {"strategy": strategy, "status": status, "limit": limit}.items() if v is not None}
        return self._request("GET", "/api/v1/proposals/", params=params)

    def receipt(self, proposal_id: str) -> dict:
        return self._request("GET", f"/api/v1/proposals/{proposal_id}/receipt/")

    def node_keys(self) -> list:
        return self._request("GET", "/api/v1/node-keys/")

    def portfolio(self) -> dict:
        return self._request("GET", "/api/v1/portfolio/")

    def health(self) -> dict:
        """The health report, also when it says `down` (503)."""
        response = self.session.get(self.base_url + "/api/v1/health/", timeout=self.timeout)
        return response.json()

    # --- the event stream ---------------------------------------------------------------

    def stream(self, *, last_event_id: int | None = None, reconnect: bool = True) -> Iterator[Event]:
        """The agent's events, for ever: after a dropped connection it resumes after the last
        event it gave, so no event is lost or repeated."""
        last = last_event_id
        failures = 0
        while True:
            headers = {"Accept": "text/event-stream"}
            if last is not None:
                headers["Last-Event-ID"] = str(last)
            try:
                with self.session.get(self.base_url + "/api/v1/stream/", headers=headers, stream=True,
                                      timeout=(self.timeout, max(self.timeout, 60))) as response:
                    if response.status_code != 200:
                        raise _error(response)
                    failures = 0
                    for event in _parse_events(response):
                        last = event.id
                        yield event
            except (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError):
                pass
            except ChronosXError as error:
                if error.status not in RETRIED_STATUSES:
                    raise
            if not reconnect:
                return
            failures += 1
            time.sleep(self._delay(failures, None))

    # --- plumbing -----------------------------------------------------------------------

    def _request(self, method: str, path: str, *, waiting: int | None = None, **kwargs) -> Any:
        timeout = self.timeout + (waiting or 0)
        for attempt in range(self.retries + 1):
            try:
                response = self.session.request(method, self.base_url + path, timeout=timeout, **kwargs)
            except (requests.ConnectionError, requests.Timeout) as exc:
                if attempt == self.retries:
                    raise Unreachable(f"{method} {path}: {exc}") from exc
                time.sleep(self._delay(attempt + 1, None))
                continue
            if response.status_code < 400:
                return response.json()
            error = _error(response)
            if response.status_code not in RETRIED_STATUSES or attempt == self.retries:
                raise error
            time.sleep(self._delay(attempt + 1, error.retry_after))
        raise AssertionError("unreachable")

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return retry_after
        return min(self.max_backoff, self.backoff * 2 ** (attempt - 1)) * (0.5 + random.random() / 2)


def _prefer(wait: int | None, until_approved: bool) -> dict:
    if wait is None:
        return {}
    if not 0 <= wait <= MAX_WAIT_SECONDS:
        raise ValueError(f"wait must be 0..{MAX_WAIT_SECONDS} seconds")
    return {"Prefer": f"wait={wait}" + (", return=approved" if until_approved else "")}


def _done(proposal: dict, until_approved: bool) -> bool:
    return proposal["status"] in FINAL or (until_approved and proposal["status"] == "approved")


def _error(response: requests.Response) -> ChronosXError:
    try:
        body = response.json()
    except ValueError:
        body = None
    retry_after = response.headers.get("Retry-After")
    try:
        seconds = float(retry_after) if retry_after is not None else None
    except ValueError:
        seconds = None
    return error_for(response.status_code, body, seconds)


def _parse_events(response: requests.Response) -> Iterator[Event]:
    """text/event-stream, as the HTML standard parses it (comments are heartbeats)."""
    import json

    fields: dict[str, list[str]] = {}
    for raw in response.iter_lines(decode_unicode=True):
        line = raw if raw is not None else ""
        if line == "":
            if "data" in fields and "id" in fields:
                yield Event(id=int(fields["id"][-1]), kind=fields.get("event", ["message"])[-1],
                            data=json.loads("\n".join(fields["data"])))
            fields = {}
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        fields.setdefault(name, []).append(value[1:] if value.startswith(" ") else value)
