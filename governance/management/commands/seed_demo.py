from django.core.management.base import BaseCommand
from django.db import transaction

from governance.keys import node_keys_ensure
from governance.models import (
    AssetLimit,
    CircuitBreaker,
    Instrument,
    Ruleset,
    Strategy,
    StrategyBudget,
    TradingState,
)
from governance.services.rulesets import ruleset_new_draft, ruleset_publish

INSTRUMENTS = [
    {"symbol": "BTCUSDT", "base_asset": "BTC", "min_quantity": "0.0001", "quantity_step": "0.0001"},
    {"symbol": "ETHUSDT", "base_asset": "ETH", "min_quantity": "0.001", "quantity_step": "0.001"},
]
# Limits are generous so a demo runs for a long time, yet a 1,000 BTC order is cut down.
ASSET_LIMITS = {
    "BTCUSDT": {"max_position_quantity": "100", "max_exposure": "1000000"},
    "ETHUSDT": {"max_position_quantity": "1000", "max_exposure": "1000000"},
}
BREAKERS = ["venue_errors", "venue_latency", "reconciliation_mismatch"]


class Command(BaseCommand):
    help = "Idempotently create demo instruments, strategy, a published ruleset and node keys. Trading stays halted."

    def handle(self, *args, **options):
        with transaction.atomic():
            for spec in INSTRUMENTS:
                Instrument.objects.get_or_create(symbol=spec["symbol"], defaults={**spec, "quote_asset": "USDT"})
            demo, _ = Strategy.objects.get_or_create(slug="demo", defaults={"name": "Demo strategy"})
            TradingState.objects.get_or_create(pk=1)
            for name in BREAKERS:
                CircuitBreaker.objects.get_or_create(name=name)
            ruleset = Ruleset.objects.filter(status=Ruleset.Status.PUBLISHED).order_by("-version").first()
            if ruleset is None:
                ruleset = self._publish_demo_ruleset(demo)
        created = node_keys_ensure()
        self.stdout.write(f"instruments: {', '.join(s['symbol'] for s in INSTRUMENTS)}")
        self.stdout.write(f"strategy: demo; ruleset v{ruleset.version} published ({ruleset.mode})")
        self.stdout.write(f"node keys: {', '.join(created) if created else 'already present'}")
        self.stdout.write("trading: halted (enable with: manage.py trading enable --reason TEXT)")

    def _publish_demo_ruleset(self, demo):
        draft = ruleset_new_draft(source=None, actor="seed_demo")
        draft.min_confidence = "0.60"
        draft.max_signal_age_seconds = "60"
        draft.max_slippage_bps = "25"
        draft.max_price_deviation_bps = "100"
        draft.max_order_notional = "10000"
        draft.default_strategy_budget = "1000000"
        draft.max_gross_exposure = "2000000"
        draft.max_open_positions = 500
        draft.max_proposals_per_minute = 600
        # Post-ALPHA loss limits (in ALPHA nothing is realized, so they pass): in FULL mode a
        # strategy may lose 2% of its budget in a day, the portfolio 1% of its gross cap.
        draft.max_daily_loss_strategy = "20000"
        draft.max_daily_loss_asset = "20000"
        draft.max_daily_loss_portfolio = "20000"
        draft.max_drawdown_strategy = "50000"
        draft.max_drawdown_portfolio = "100000"
        draft.loss_cooldown_losses = 3
        draft.loss_cooldown_minutes = 30
        draft.notes = "demo ruleset created by seed_demo"
        draft.save()
        for symbol, limits in ASSET_LIMITS.items():
            AssetLimit.objects.create(ruleset=draft, instrument=Instrument.objects.get(symbol=symbol), **limits)
        StrategyBudget.objects.create(ruleset=draft, strategy=demo, max_exposure="1000000")
        return ruleset_publish(ruleset=draft, actor="seed_demo")
