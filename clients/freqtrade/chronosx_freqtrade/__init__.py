"""ChronosX in front of a Freqtrade strategy: every entry and exit is a proposal, and the bot
does what governance decided.

    from chronosx_freqtrade import ChronosXGate

    class MyStrategy(ChronosXGate, IStrategy):      # the mixin first, so its hooks run
        ...

with, in the bot's config, `"chronosx": {"url": "http://127.0.0.1:8000", "token": "cx_…",
"strategy": "demo"}` (the token may come from the CHRONOSX_TOKEN environment variable instead).

Freqtrade fixes an entry's amount before `confirm_trade_entry` and only lets that hook say yes
or no, so the question is asked where the amount can still change: `custom_stake_amount`
proposes the stake the strategy wants (its own `custom_stake_amount`, reached through
`super()`, or the configured stake) and returns the stake of the approved quantity, which is
smaller when ChronosX answered `modify`. `confirm_trade_entry` then lets the order through only
when that answer approved at least the amount Freqtrade is about to send; a block, a timeout,
an error or no answer says no. Freqtrade treats an exception in these hooks as "yes", so every
failure here is caught and turned into "no".

Freqtrade sends two more kinds of entry order without `confirm_trade_entry`: an addition to an
open position (`adjust_trade_position`) and an entry order replaced at a new price
(`adjust_order_price`, for the remaining amount at that price). Both are asked here as well: an
addition goes on with the approved stake or not at all; a replacement only when its whole
amount is approved, otherwise the order stays as it is.

Only in live and dry-run modes: backtests and hyperopt run as if the mixin were not there.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from chronosx_client import ChronosXError, Client

logger = logging.getLogger(__name__)

# The proposal statuses in which ChronosX has approved the quantity (quorum met).
APPROVED = frozenset({"approved", "routed", "partially_filled", "filled"})
# How long an answer given in custom_stake_amount stays good for the confirm_trade_entry that
# follows it in the same entry attempt (older: asked again).
ANSWER_TTL_SECONDS = 60
# A cut stake is raised by this fraction so that stake / rate lands on, not just under, the
# approved quantity before Freqtrade truncates it to the market's precision.
STAKE_NUDGE = 1e-9


@dataclass(frozen=True)
class Answer:
    proposal_id: str | None
    side: str  # Freqtrade's: long or short
    approved_quantity: Decimal | None  # None: not approved (blocked, timed out, failed)
    asked_at: float

    def allows(self, amount: Decimal) -> bool:
        return self.approved_quantity is not None and amount <= self.approved_quantity


class ChronosXGate:
    """Mix into a Freqtrade IStrategy (before IStrategy in the bases)."""

    def chronosx_confidence(self, pair: str, side: str, entry_tag: str | None) -> float:
        """The confidence sent with an entry; override to send the strategy's own."""
        return float(self._chronosx_settings().get("confidence", 1.0))

    # --- Freqtrade hooks --------------------------------------------------------------------

    def custom_stake_amount(self, pair: str, current_time: datetime, current_rate: float, proposed_stake: float,
                            min_stake: float | None, max_stake: float, leverage: float, entry_tag: str | None,
                            side: str, **kwargs) -> float:
        stake = super().custom_stake_amount(
            pair=pair, current_time=current_time, current_rate=current_rate, proposed_stake=proposed_stake,
            min_stake=min_stake, max_stake=max_stake, leverage=leverage, entry_tag=entry_tag, side=side, **kwargs)
        if not self._chronosx_governs():
            return stake
        amount = self._chronosx_amount(pair, stake / current_rate * leverage)
        answer = self._chronosx_ask_entry(pair=pair, side=side, amount=amount, rate=current_rate,
                                          order_type=self.order_types["entry"], entry_tag=entry_tag,
                                          at=current_time)
        self._chronosx_answers()[pair] = answer
        if answer.approved_quantity is None or answer.approved_quantity >= amount:
            return stake  # confirm_trade_entry, which comes next, refuses what was not approved
        logger.info("ChronosX cut %s %s to %s (proposal %s)", pair, amount, answer.approved_quantity,
                    answer.proposal_id)
        return float(answer.approved_quantity) * current_rate / leverage * (1 + STAKE_NUDGE)

    def confirm_trade_entry(self, pair: str, order_type: str, amount: float, rate: float, time_in_force: str,
                            current_time: datetime, entry_tag: str | None, side: str, **kwargs) -> bool:
        if not self._chronosx_governs():
            return super().confirm_trade_entry(
                pair=pair, order_type=order_type, amount=amount, rate=rate, time_in_force=time_in_force,
                current_time=current_time, entry_tag=entry_tag, side=side, **kwargs)
        try:
            sent = self._chronosx_amount(pair, amount)
            answer = self._chronosx_answers().pop(pair, None)
            if answer is None or answer.side != side or time.monotonic() - answer.asked_at > ANSWER_TTL_SECONDS:
                # Not sized by custom_stake_amount just now (its answer aged, say): ask for this amount.
                answer = self._chronosx_ask_entry(pair=pair, side=side, amount=sent, rate=rate,
                                                  order_type=order_type, entry_tag=entry_tag, at=current_time)
            if not answer.allows(sent):
                logger.info("ChronosX: no entry %s %s %s (approved %s, proposal %s)", side, pair, sent,
                            answer.approved_quantity, answer.proposal_id)
                return False
        except Exception:
            logger.exception("ChronosX: entry %s %s refused: the check failed", side, pair)
            return False
        return super().confirm_trade_entry(
            pair=pair, order_type=order_type, amount=amount, rate=rate, time_in_force=time_in_force,
            current_time=current_time, entry_tag=entry_tag, side=side, **kwargs)

    def adjust_trade_position(self, trade, current_time: datetime, current_rate: float, current_profit: float,
                              min_stake: float | None, max_stake: float, current_entry_rate: float,
                              current_exit_rate: float, current_entry_profit: float, current_exit_profit: float,
                              **kwargs):
        wanted = super().adjust_trade_position(
            trade=trade, current_time=current_time, current_rate=current_rate, current_profit=current_profit,
            min_stake=min_stake, max_stake=max_stake, current_entry_rate=current_entry_rate,
            current_exit_rate=current_exit_rate, current_entry_profit=current_entry_profit,
            current_exit_profit=current_exit_profit, **kwargs)
        stake, tag = wanted if isinstance(wanted, tuple) else (wanted, None)
        if not self._chronosx_governs() or stake is None or stake <= 0:
            return wanted  # nothing to add; a reduction is an exit, asked in confirm_trade_exit
        try:
            amount = self._chronosx_amount(trade.pair, stake / current_entry_rate * trade.leverage)
            answer = self._chronosx_ask_entry(pair=trade.pair, side=trade.trade_direction, amount=amount,
                                              rate=current_entry_rate, order_type=self.order_types["entry"],
                                              entry_tag=tag, at=current_time)
        except Exception:
            logger.exception("ChronosX: addition to %s refused: the check failed", trade.pair)
            return None
        if answer.approved_quantity is None:
            logger.info("ChronosX: no addition to %s %s (proposal %s)", trade.pair, amount, answer.proposal_id)
            return None
        if answer.approved_quantity < amount:
            stake = float(answer.approved_quantity) * current_entry_rate / trade.leverage * (1 + STAKE_NUDGE)
        return (stake, tag) if isinstance(wanted, tuple) else stake

    def adjust_order_price(self, trade, order, pair: str, current_time: datetime, proposed_rate: float,
                           current_order_rate: float, entry_tag: str | None, side: str, is_entry: bool, **kwargs):
        price = super().adjust_order_price(
            trade=trade, order=order, pair=pair, current_time=current_time, proposed_rate=proposed_rate,
            current_order_rate=current_order_rate, entry_tag=entry_tag, side=side, is_entry=is_entry, **kwargs)
        if not self._chronosx_governs() or not is_entry or not price or price == current_order_rate:
            return price  # kept or cancelled, or an exit (asked in confirm_trade_exit)
        try:
            # What Freqtrade will send: the remaining stake at the new price.
            amount = self._chronosx_amount(pair, order.safe_remaining * order.safe_price / price)
            answer = self._chronosx_ask_entry(pair=pair, side=side, amount=amount, rate=price,
                                              order_type=self.order_types["entry"], entry_tag=entry_tag,
                                              at=current_time)
            if answer.allows(amount):
                return price
            logger.info("ChronosX: %s entry kept at %s, not replaced at %s (approved %s, proposal %s)", pair,
                        current_order_rate, price, answer.approved_quantity, answer.proposal_id)
        except Exception:
            logger.exception("ChronosX: %s entry kept at %s: the check failed", pair, current_order_rate)
        return current_order_rate

    def confirm_trade_exit(self, pair: str, trade, order_type: str, amount: float, rate: float,
                           time_in_force: str, exit_reason: str, current_time: datetime, **kwargs) -> bool:
        if self._chronosx_governs():
            try:
                sent = self._chronosx_amount(pair, amount)
                answer = self._chronosx_ask(
                    pair=pair, side="buy" if trade.is_short else "sell", intent="close", amount=sent, rate=rate,
                    order_type=order_type, confidence=1.0, at=current_time, freqtrade_side=trade.trade_direction)
                # An exit cannot be cut here: anything less than the whole amount waits for the next try.
                if not answer.allows(sent):
                    logger.info("ChronosX: no exit %s %s (%s, proposal %s)", pair, sent, exit_reason,
                                answer.proposal_id)
                    return False
            except Exception:
                logger.exception("ChronosX: exit %s refused: the check failed", pair)
                return False
        return super().confirm_trade_exit(
            pair=pair, trade=trade, order_type=order_type, amount=amount, rate=rate, time_in_force=time_in_force,
            exit_reason=exit_reason, current_time=current_time, **kwargs)

    # --- asking ChronosX ----------------------------------------------------------------------

    def _chronosx_ask_entry(self, *, pair, side, amount, rate, order_type, entry_tag, at) -> Answer:
        try:
            return self._chronosx_ask(
                pair=pair, side="sell" if side == "short" else "buy", intent="open", amount=amount, rate=rate,
                order_type=order_type, confidence=self.chronosx_confidence(pair, side, entry_tag), at=at,
                freqtrade_side=side)
        except Exception:
            logger.exception("ChronosX: entry %s %s not asked", side, pair)
            return Answer(proposal_id=None, side=side, approved_quantity=None, asked_at=time.monotonic())

    def _chronosx_ask(self, *, pair, side, intent, amount, rate, order_type, confidence, at,
                      freqtrade_side) -> Answer:
        """One proposal, held with `Prefer: wait` until approved or final (or the wait runs out)."""
        settings = self._chronosx_settings()
        price = self._chronosx_price(pair, rate)
        limit = order_type == "limit"
        proposal = self._chronosx_client().propose(
            strategy=settings["strategy"], symbol=pair.split(":")[0].replace("/", ""), side=side,
            quantity=_decimal_text(amount), order_type="limit" if limit else "market",
            limit_price=price if limit else None, reference_price=price, confidence=confidence,
            expected_slippage_bps=settings.get("expected_slippage_bps", 0), signal_time=at.isoformat(),
            intent=intent, wait=int(settings.get("wait_seconds", 20)), until_approved=True)
        decision = proposal.get("decision") or {}
        approved = decision.get("approved_quantity") if proposal["status"] in APPROVED else None
        if approved is None:
            failed = [c["rule"] for c in decision.get("checks", []) if not c["passed"]]
            logger.info("ChronosX: %s %s %s %s not approved: %s %s", intent, side, pair, amount, proposal["status"],
                        ", ".join(failed))
        return Answer(proposal_id=proposal["id"], side=freqtrade_side,
                      approved_quantity=Decimal(approved) if approved is not None else None,
                      asked_at=time.monotonic())

    # --- plumbing -------------------------------------------------------------------------------

    def _chronosx_governs(self) -> bool:
        # Strings, not freqtrade.enums.RunMode: the config holds the enum, whose value is the string.
        runmode = getattr(self.config.get("runmode"), "value", self.config.get("runmode"))
        return runmode in ("live", "dry_run")

    def _chronosx_settings(self) -> dict:
        settings = self.config.get("chronosx")
        if not settings or not settings.get("url") or not settings.get("strategy"):
            raise ChronosXError('the bot config needs "chronosx": {"url": …, "strategy": …}')
        return settings

    def _chronosx_client(self) -> Client:
        client = self.__dict__.get("_chronosx_client_")
        if client is None:
            settings = self._chronosx_settings()
            token = settings.get("token") or os.environ.get("CHRONOSX_TOKEN")
            if not token:
                raise ChronosXError('no ChronosX token: "chronosx": {"token": …} or CHRONOSX_TOKEN')
            # Few retries: Freqtrade's loop waits on every entry.
            client = Client(settings["url"], token, timeout=float(settings.get("timeout_seconds", 10)), retries=2)
            self.__dict__["_chronosx_client_"] = client
        return client

    def _chronosx_answers(self) -> dict[str, Answer]:
        return self.__dict__.setdefault("_chronosx_answers_", {})

    def _chronosx_amount(self, pair: str, amount: float) -> Decimal:
        """The amount as Freqtrade will send it: truncated to the market's precision the way
        Freqtrade's own Exchange does it just before creating the order."""
        return Decimal(str(self.dp._exchange.amount_to_precision(pair, amount)))

    def _chronosx_price(self, pair: str, rate: float) -> str:
        return _decimal_text(Decimal(str(self.dp._exchange.price_to_precision(pair, rate))))


def _decimal_text(value: Decimal) -> str:
    """A plain decimal string (no exponent), as ChronosX reads decimals."""
    return format(value.normalize(), "f")
