"""Compliance exports: the one service behind `manage.py export` and the admin's export page.

    export_run(kind=…, fmt=…, period=export_period(start=…, end=…), strategy=…, out=…, actor=…)

writes the file (rows streamed from the database into it), hashes it, and records one audit
event naming who exported what, for which range, how many rows (or pages) and the file's
SHA-256. The file appears at `out` only once complete and audited. The admin runs it in the
background (compliance.services.jobs), with `on_progress` keeping the job's progress.
"""

import hashlib
import os
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from datetime import timezone as dt_timezone
from pathlib import Path

from django.db import transaction
from django.utils import timezone

from compliance import writers
from compliance.selectors.audit import audit_chain_status
from compliance.selectors.report import report_figures
from compliance.selectors.rows import TABLES
from governance.models import Strategy
from ledger.services import audit_record

KINDS = ("proposals", "votes", "orders", "fills", "audit", "report")
FORMATS = {kind: ("csv", "xlsx") for kind in TABLES} | {"report": ("pdf",)}
CONTENT_TYPES = {
    "csv": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "pdf": "application/pdf",
}
# Rows between two progress reports: frequent enough for a progress bar, rare enough to cost nothing.
PROGRESS_EVERY = 1000
DATE_HELP = "YYYY-MM-DD (UTC; --to includes that whole day), or an ISO-8601 time with its offset"


class ExportError(ValueError):
    """An export that cannot be made as asked (the message says why, for the person asking)."""


@dataclass(frozen=True)
class ExportPeriod:
    since: datetime  # inclusive
    until: datetime  # exclusive

    def describe(self) -> str:
        return f"{self.since.isoformat()} to {self.until.isoformat()} (exclusive)"


@dataclass(frozen=True)
class ExportResult:
    kind: str
    fmt: str
    count: int
    unit: str  # "rows", or "pages" for the report
    sha256: str
    path: Path

    @property
    def filename(self) -> str:
        return self.path.name


def _moment(value, *, option: str, end: bool) -> datetime:
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, date):
        parsed = datetime.combine(value, time.min, tzinfo=dt_timezone.utc) + (timedelta(days=1) if end else timedelta())
        return parsed
    else:
        text = str(value or "").strip()
        if not text:
            raise ExportError(f"{option} is required: {DATE_HELP}")
        try:
            day = date.fromisoformat(text) if len(text) == 10 else None
        except ValueError:
            raise ExportError(f"{option} {text!r} is not a valid date: {DATE_HELP}") from None
        if day is not None:
            return _moment(day, option=option, end=end)
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            raise ExportError(f"{option} {text!r} is not a valid date: {DATE_HELP}") from None
    if parsed.tzinfo is None:
        raise ExportError(f"{option} {value!s} has no UTC offset: {DATE_HELP}")
    return parsed.astimezone(dt_timezone.utc)


def export_period(*, start, end) -> ExportPeriod:
    """The range of an export from --from and --to: dates (UTC days, both included) or
    ISO-8601 times with an offset ([from, to))."""
    since = _moment(start, option="--from", end=False)
    until = _moment(end, option="--to", end=True)
    if until <= since:
        raise ExportError(f"--to ({end}) must be after --from ({start})")
    return ExportPeriod(since=since, until=until)


def export_check(*, kind: str, fmt: str, strategy: str | None) -> None:
    if kind not in KINDS:
        raise ExportError(f"unknown export {kind!r}: one of {', '.join(KINDS)}")
    if fmt not in FORMATS[kind]:
        raise ExportError(f"{kind} exports as {' or '.join(FORMATS[kind])}, not {fmt!r}")
    if strategy and not Strategy.objects.filter(slug=strategy).exists():
        raise ExportError(f"no strategy named {strategy!r}")


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _reporting(rows, *, total: int, on_progress, every: int):
    """The rows, passed on as they come, with `on_progress(done, total)` every `every` rows."""
    on_progress(0, total)
    for done, row in enumerate(rows, 1):
        yield row
        if done % every == 0:
            on_progress(done, max(total, done))


def export_run(
    *, kind: str, fmt: str, period: ExportPeriod, strategy: str | None, out, actor: str,
    on_progress=None, progress_every: int = PROGRESS_EVERY,
) -> ExportResult:
    """Write the export to `out`, then record it in the audit trail (one event).

    `on_progress(done, total)`, when given, is told the rows written so far and how many there
    are (0, 0 while the chain is verified first); an exception it raises stops the export and
    leaves no file."""
    export_check(kind=kind, fmt=fmt, strategy=strategy)
    # Verifying the chain reports no rows, but it may take a while: it still shows the job alive.
    chain_progress = None if on_progress is None else (lambda _events: on_progress(0, 0))
    out = Path(out)
    partial = out.with_name(f".{out.name}.{os.getpid()}.partial")
    about = [
        ("export", kind),
        ("from", period.since.isoformat()),
        ("to (exclusive)", period.until.isoformat()),
        ("strategy", strategy or "all"),
        ("generated at", timezone.now().astimezone(dt_timezone.utc).isoformat()),
        ("generated by", actor),
    ]
    try:
        if kind == "report":
            chain = audit_chain_status(on_progress=chain_progress)
            figures = report_figures(since=period.since, until=period.until, strategy=strategy)
            title = f"ChronosX compliance report {period.since.date()} to {(period.until - timedelta(microseconds=1)).date()}"
            count, unit = writers.pdf_report(partial, title=title, about=about, figures=figures, chain=chain), "pages"
        else:
            table = TABLES[kind]
            rows_kw = {}
            if kind == "audit":
                # Verified first: the rows written are the chain up to the head that verified.
                chain = audit_chain_status(on_progress=chain_progress)
                rows_kw["up_to_seq"] = chain.head_seq
                about += [
                    ("chain verification", chain.summary),
                    ("chain verified", "true" if chain.ok else "false"),
                    ("head seq", chain.head_seq),
                    ("head hash", chain.head_hash),
                ]
            records = {"since": period.since, "until": period.until, "strategy": strategy, **rows_kw}
            rows = table.rows(**records)
            if on_progress is not None:
                rows = _reporting(rows, total=table.count(**records), on_progress=on_progress, every=progress_every)
            unit = "rows"
            if fmt == "csv":
                count = writers.csv_write(partial, columns=table.columns, rows=rows,
                                          preamble=about if kind == "audit" else ())
            else:
                count = writers.xlsx_write(partial, sheet=kind, columns=table.columns, rows=rows, summary=about)
        sha256 = _file_sha256(partial)
        with transaction.atomic():
            audit_record(
                kind="report.exported",
                actor=actor,
                payload={
                    "report": kind,
                    "format": fmt,
                    "from": period.since.isoformat(),
                    "to": period.until.isoformat(),
                    "strategy": strategy,
                    unit: count,
                    "sha256": sha256,
                    "file": out.name,
                },
            )
        os.replace(partial, out)
    except writers.TooManyRows as exc:
        raise ExportError(str(exc)) from None
    finally:
        partial.unlink(missing_ok=True)
    return ExportResult(kind=kind, fmt=fmt, count=count, unit=unit, sha256=sha256, path=out)
