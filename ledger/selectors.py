from decimal import Decimal

from governance.selectors import ruleset_current
from ledger.models import Fill, Position


def portfolio_report(*, strategies=None) -> dict:
    """Realized-only portfolio: positions and exposure at entry price; nothing marked to market."""
    positions = Position.objects.select_related("strategy", "instrument").order_by("strategy__slug", "instrument__symbol")
    fills = Fill.objects.all()
    if strategies is not None:
        positions = positions.filter(strategy__in=strategies)
        fills = fills.filter(strategy__in=strategies)
    by_asset, by_strategy, gross, rows = {}, {}, Decimal(0), []
    for p in positions:
        if p.quantity == 0:
            continue
        rows.append(
            {
                "strategy": p.strategy.slug,
                "symbol": p.instrument.symbol,
                "quantity": str(p.quantity),
                "average_entry_price": str(p.entry_notional / abs(p.quantity)),
            }
        )
        by_asset[p.instrument.symbol] = by_asset.get(p.instrument.symbol, Decimal(0)) + p.entry_notional
        by_strategy[p.strategy.slug] = by_strategy.get(p.strategy.slug, Decimal(0)) + p.entry_notional
        gross += p.entry_notional
    ruleset = ruleset_current()
    return {
        "mode": ruleset.mode if ruleset else "alpha",
        "realized_pnl": "0",
        "fees_paid": str(sum((f.fee for f in fills), Decimal(0))),
        "positions": rows,
        "exposure": {
            "gross": str(gross),
            "by_asset": {k: str(v) for k, v in by_asset.items()},
            "by_strategy": {k: str(v) for k, v in by_strategy.items()},
        },
    }
