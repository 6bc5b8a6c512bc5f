"""Impact reports: a ruleset version replayed on the stored decisions of the last N days.

The comparison is governance/impact.py (pure). Here: the report row (requested, claimed by
one worker, its progress, its result), and the stream of stored decisions it reads.
"""

import logging
import os
from datetime import timedelta
from itertools import islice

from django.db import transaction
from django.db.models import Func, TextField
from django.db.models.fields.json import KT
from django.db.models.functions import Cast
from django.utils import timezone

from governance.impact import impact_replay
from governance.models import Decision, ImpactReport, Ruleset
from governance.services.rulesets import params_digest, ruleset_params_of
from ledger.services import audit_record

log = logging.getLogger(__name__)

DEFAULT_DAYS = 7
MAX_DAYS = 3660
CHUNK_SIZE = 2000  # decisions per chunk: a round trip, a task for a worker, a progress update
# Below this many decisions the replay runs in the calling process: starting worker
# processes would cost more than they save.
PARALLEL_FROM = 20_000

R = ImpactReport.Status


def impact_request(*, ruleset: Ruleset, days: int, actor: str) -> ImpactReport:
    """A queued report; a worker runs it (impact_run)."""
    if not 1 <= days <= MAX_DAYS:
        raise ValueError(f"days: must be an integer 1 <= x <= {MAX_DAYS}; got {days}")
    return ImpactReport.objects.create(ruleset=ruleset, days=days, requested_by=actor, requested_at=timezone.now())


def impact_report_latest(*, ruleset: Ruleset) -> ImpactReport | None:
    return ImpactReport.objects.filter(ruleset=ruleset).order_by("-requested_at", "-id").first()


class FailedChecks(Func):
    """A stored decision's failed checks, as JSON text: all the comparison needs of them (a
    rule not among them passed). PostgreSQL picks them out itself, which spares turning every
    passed check into text; elsewhere all the checks are read."""

    output_field = TextField()

    def as_sql(self, compiler, connection, **extra):
        return compiler.compile(Cast(self.source_expressions[0], TextField()))

    def as_postgresql(self, compiler, connection, **extra):
        sql, params = compiler.compile(self.source_expressions[0])
        return f"jsonb_path_query_array({sql}, '$[*] ? (@.passed == false)')::text", params


def _text(field: str):
    # Read as text: no per-row conversion (to a datetime, a UUID, a Decimal) in this process.
    return Cast(field, TextField())


def _stored_decisions(*, since, until, chunk_size: int):
    """Chunks of stored decisions made in [since, until), as the replay reads them: the proposal
    and the context as JSON text (the rules they were decided with are not read), every other
    column as text (decided_at as the database writes it, which sorts as time does).
    Unordered: the report orders what changed."""
    rows = (
        Decision.objects.filter(decided_at__gte=since, decided_at__lt=until)
        .values_list(
            _text("proposal_id"),
            _text("decided_at"),
            "outcome",
            _text("approved_quantity"),
            KT("inputs__proposal"),
            KT("inputs__context"),
            FailedChecks("checks"),
        )
        .iterator(chunk_size=chunk_size)
    )
    while chunk := list(islice(rows, chunk_size)):
        yield chunk


def _workers(total: int) -> int:
    return min(os.cpu_count() or 1, 4) if total >= PARALLEL_FROM else 0


def impact_run(*, report_id, workers: int | None = None, chunk_size: int = CHUNK_SIZE) -> ImpactReport | None:
    """Run a queued report: claimed by one worker only (a conditional update), its progress
    stored after every chunk, its result and audit event written together. Returns the
    report, or None when another worker has it. A failure is stored on the report."""
    started = timezone.now()
    if not ImpactReport.objects.filter(pk=report_id, status=R.QUEUED).update(status=R.RUNNING, started_at=started):
        return None
    report = ImpactReport.objects.select_related("ruleset").get(pk=report_id)
    mine = ImpactReport.objects.filter(pk=report_id)
    try:
        rules = ruleset_params_of(report.ruleset)
        since, until = started - timedelta(days=report.days), started
        total = Decision.objects.filter(decided_at__gte=since, decided_at__lt=until).count()
        mine.update(since=since, until=until, total=total, params_digest=params_digest(rules))
        tally = impact_replay(
            rules=rules,
            chunks=_stored_decisions(since=since, until=until, chunk_size=chunk_size),
            workers=_workers(total) if workers is None else workers,
            on_progress=lambda seen: mine.update(done=seen),
        )
        result = tally.report()
        with transaction.atomic():
            mine.update(status=R.DONE, done=tally.seen, total=max(total, tally.seen), result=result, finished_at=timezone.now())
            audit_record(
                kind="ruleset.impact_replayed",
                actor=report.requested_by,
                payload={
                    "version": report.ruleset.version,
                    "report": report.pk,
                    "days": report.days,
                    **{key: result[key] for key in ("evaluated", "changed", "transitions", "by_rule", "by_strategy")},
                    "errors": len(result["errors"]),
                },
            )
    except Exception as exc:
        log.exception("impact report %s failed", report_id)
        mine.update(status=R.FAILED, error=f"{type(exc).__name__}: {exc}", finished_at=timezone.now())
    report.refresh_from_db()
    return report
