"""`manage.py trading …`: the global trading state, pauses, and the kill switch (CONTRACT.md §2b).

It lives in the exchange app because the kill switch cancels at the venue and reports what
each cancel came to (`cancelled: N`, `unknown: N`): governance may not import the exchange,
and the pipeline's stages carry no answer back to a waiting command. The state changes
themselves are governance's services, as the admin and the dashboard call them.
"""

from django.core.management.base import CommandError

from exchange.services.cancelling import trading_kill_now
from governance.management.base import OperatorCommand
from governance.models import Instrument, Strategy
from governance.roles import CONTROL_TRADING, command_actor
from governance.services import controls

STATES = {"enable": controls.trading_enable, "halt": controls.trading_halt, "reduce-only": controls.trading_reduce_only}
# What else a kill may report, when not zero (after `cancelled: N` and `unknown: N`).
KILL_EXTRAS = (
    ("filled", "filled"),
    ("refused", "refused"),
    ("failed", "failed"),
    ("in_flight", "in flight"),
    ("expired", "approvals withdrawn"),
)
USER_HELP = (
    "who acts: a staff user acts with their role's rights; anyone else (or, by default, the OS user) with full rights"
)


class Command(OperatorCommand):
    help = "Set the trading state (enable, halt, reduce-only), pause or resume a strategy or instrument, or kill (audited)."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        for action, text in (
            ("enable", "openings and closes pass"),
            ("halt", "nothing passes, nothing is routed"),
            ("reduce-only", "only intent: close passes"),
            ("kill", "halt, then cancel every open order at the venue"),
        ):
            p = sub.add_parser(action, help=text)
            p.add_argument("--reason", required=True)
            p.add_argument("--user", default=None, help=USER_HELP)
        for action in ("pause", "resume"):
            p = sub.add_parser(action, help=f"{action} one strategy or one instrument")
            target = p.add_mutually_exclusive_group(required=True)
            target.add_argument("--strategy", metavar="SLUG")
            target.add_argument("--symbol", metavar="SYMBOL")
            p.add_argument("--reason", required=True)
            p.add_argument("--user", default=None, help=USER_HELP)

    def handle(self, *args, action, reason, user, **options):
        what = {"pause": "pause trading", "resume": "resume trading", "kill": "press the kill switch"}.get(action, f"{action} trading")
        actor = command_actor(user=user, permission=CONTROL_TRADING, action=what, required=False)
        who = actor.removeprefix("operator:")
        if not reason.strip():
            raise CommandError("--reason must say why")
        if action in STATES:
            state = _change(STATES[action], actor=actor, reason=reason)
            self.stdout.write(f"trading {state.state} by {who}: {state.reason}")
        elif action == "kill":
            counts = _change(trading_kill_now, actor=actor, reason=reason)
            self.stdout.write(f"trading halted by {who}: {reason.strip()}")
            self.stdout.write(f"cancelled: {counts['cancelled']}")
            self.stdout.write(f"unknown: {counts['unknown']}")
            for outcome, label in KILL_EXTRAS:
                if counts[outcome]:
                    self.stdout.write(f"{label}: {counts[outcome]}")
        else:
            target = _target(strategy=options["strategy"], symbol=options["symbol"])
            row = _change(controls.pause_set, target=target, paused=action == "pause", actor=actor, reason=reason)
            kind = "strategy" if isinstance(row, Strategy) else "instrument"
            self.stdout.write(f"{kind} {row} {'paused' if row.paused else 'resumed'} by {who}: {reason.strip()}")


def _change(service, **kwargs):
    try:
        return service(**kwargs)
    except ValueError as exc:  # a service's refusal of its input (an empty or overlong reason)
        raise CommandError(str(exc)) from None


def _target(*, strategy: str | None, symbol: str | None):
    if strategy is not None:
        row = Strategy.objects.filter(slug=strategy).first()
        if row is None:
            raise CommandError(f"no strategy {strategy!r}")
        return row
    row = Instrument.objects.filter(symbol=symbol).first()
    if row is None:
        raise CommandError(f"no instrument {symbol!r}")
    return row
