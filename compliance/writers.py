"""File formats: CSV and XLSX written row by row as rows arrive, and the PDF report.

No database here: writers are given columns, a row iterator and the lines that describe
the export (range, user, and for the audit trail the chain's verification and head hash).
"""

import csv
from datetime import datetime
from datetime import timezone as dt_timezone

from fpdf import FPDF
from fpdf.enums import XPos, YPos
from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE
from openpyxl.styles import Font

# An XLSX sheet holds 1,048,576 rows, the column header among them.
XLSX_MAX_ROWS = 1_048_575


class TooManyRows(Exception):
    """More rows than the format can hold."""


def csv_write(path, *, columns, rows, preamble=()) -> int:
    """Rows as CSV (UTF-8, RFC 4180 quoting). `preamble`: (name, value) lines written first as
    `# name: value`, before the column header; the audit trail carries its chain status there."""
    count = 0
    with open(path, "w", newline="", encoding="utf-8") as out:
        for name, value in preamble:
            out.write(f"# {name}: {value}\r\n")
        writer = csv.writer(out)
        writer.writerow(columns)
        for row in rows:
            writer.writerow(row)
            count += 1
    return count


def _cell(sheet, value, *, bold=False):
    if isinstance(value, str):
        # Control characters cannot be stored in XLSX: shown escaped rather than dropped.
        value = ILLEGAL_CHARACTERS_RE.sub(lambda m: f"\\x{ord(m.group()):02x}", value)
    cell = WriteOnlyCell(sheet, value=value)
    if isinstance(value, str):
        cell.data_type = "s"  # text as text: a value starting with "=" never becomes a formula
    if bold:
        cell.font = Font(bold=True)
    return cell


def xlsx_write(path, *, sheet: str, columns, rows, summary=()) -> int:
    """Rows as XLSX, streamed (openpyxl's write-only mode keeps one row in memory). The first
    sheet, "export", holds `summary` (name, value) lines and the row count; the rows follow
    on the second sheet, named `sheet`."""
    workbook = Workbook(write_only=True)
    about = workbook.create_sheet("export")
    data = workbook.create_sheet(sheet)
    data.freeze_panes = "A2"
    data.append([_cell(data, c, bold=True) for c in columns])
    count = 0
    for row in rows:
        if count >= XLSX_MAX_ROWS:
            workbook.close()
            raise TooManyRows(f"more than {XLSX_MAX_ROWS} rows do not fit in one XLSX sheet: export as CSV")
        # Plain values as they are (openpyxl's fast path); a cell object only where a text
        # would otherwise turn into a formula or holds characters XLSX cannot store.
        data.append([_cell(data, v) if v and (v[0] == "=" or ILLEGAL_CHARACTERS_RE.search(v)) else v for v in row])
        count += 1
    for name, value in (*summary, ("rows", count)):
        about.append([_cell(about, name, bold=True), _cell(about, value)])
    workbook.save(path)
    return count


# --- the PDF report --------------------------------------------------------------------


def _latin(value) -> str:
    """The PDF's built-in fonts hold Latin-1 only; anything else is shown as '?'."""
    text = value if isinstance(value, str) else str(value)
    return text.replace("→", "->").replace("—", "-").replace("…", "...").encode("latin-1", "replace").decode("latin-1")


def _time(value) -> str:
    if isinstance(value, datetime):
        return value.astimezone(dt_timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    return "" if value is None else str(value)


class ReportPdf(FPDF):
    def __init__(self, title: str):
        super().__init__(orientation="portrait", unit="mm", format="A4")
        self.report_title = title
        self.set_auto_page_break(auto=True, margin=15)
        self.set_title(title)
        self.set_creator("ChronosX")

    def header(self):
        if self.page_no() == 1:
            return  # the first page carries the title in full
        self.set_font("Helvetica", "B", 9)
        self.cell(0, 6, _latin(self.report_title), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        self.ln(2)

    def footer(self):
        self.set_y(-12)
        self.set_font("Helvetica", "", 8)
        self.cell(0, 6, f"page {self.page_no()}/{{nb}}", align="C")

    def heading(self, text: str):
        self.ln(3)
        self.set_font("Helvetica", "B", 12)
        self.cell(0, 7, _latin(text), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        self.set_font("Helvetica", "", 9)

    def line(self, text: str):
        self.set_font("Helvetica", "", 9)
        self.multi_cell(0, 5, _latin(text), new_x=XPos.LMARGIN, new_y=YPos.NEXT)

    def grid(self, header, rows, widths=None, empty="none"):
        """A table; `header` None: rows of (name, value) without a heading row."""
        self.set_font("Helvetica", "", 8)
        rows = list(rows)
        if not rows:
            self.line(empty)
            return
        with self.table(col_widths=widths, text_align="LEFT", line_height=4.5, first_row_as_headings=header is not None) as table:
            if header is not None:
                table.row([_latin(h) for h in header])
            for row in rows:
                table.row([_latin(v) for v in row])
        self.set_font("Helvetica", "", 9)


def pdf_report(path, *, title: str, about, figures, chain) -> int:
    """The compliance report for a period; returns its page count."""
    f = figures
    pdf = ReportPdf(title)
    pdf.alias_nb_pages()
    pdf.add_page()
    pdf.set_font("Helvetica", "B", 16)
    pdf.cell(0, 10, _latin(title), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.grid(None, about, widths=(40, 150))

    pdf.heading("Audit chain")
    pdf.grid(None, [("verification", chain.summary), ("head seq", chain.head_seq), ("head hash", chain.head_hash)], widths=(40, 150))

    pdf.heading("Summary")
    total = sum(f.proposals_by_status.values())
    pdf.grid(
        ["count", "n"],
        [
            ("proposals", total),
            *((f"  status {k}", v) for k, v in f.proposals_by_status.items()),
            *((f"  decision {k}", v) for k, v in f.decisions_by_outcome.items()),
            ("  force-executed", f.forced),
            ("votes approve / reject", f"{f.votes['approve']} / {f.votes['reject']}"),
            ("orders", sum(f.orders_by_status.values())),
            *((f"  order {k}", v) for k, v in f.orders_by_status.items()),
            ("fills live", f.fills["live"]["fills"]),
            ("fills sandbox", f.fills["sandbox"]["fills"]),
        ],
        widths=(70, 40),
    )

    pdf.heading("Decisions per strategy")
    outcomes = ("approve", "modify", "block")
    pdf.grid(
        ["strategy", *outcomes, "total"],
        [(s, *(c.get(o, 0) for o in outcomes), sum(c.values())) for s, c in f.decisions_by_strategy.items()],
        empty="no decisions in this period",
    )

    pdf.heading("Rule hits (failed checks)")
    pdf.grid(["rule", "failed", "in blocked decisions"], f.rule_hits, empty="no check failed in this period")

    pdf.heading("Realized PnL and fees (quote currency)")
    pdf.grid(
        ["", "closes", "gross", "fees", "net"],
        [(m, r["closes"], r["gross"], r["fees"], r["amount"]) for m, r in f.realized.items()],
    )
    pdf.grid(["fees paid", "asset", "amount"], [(m, asset, v) for (m, asset), v in f.fees.items()], empty="no fees paid")

    pdf.heading("Execution quality")
    pdf.line("Slippage: fill price against the proposal's reference price, bps, quantity-weighted; positive is worse.")
    pdf.grid(
        ["mode", "strategy", "symbol", "fills", "quantity", "slippage bps", "fees", "s to fill (avg)"],
        [(e["mode"], e["strategy"], e["symbol"], e["fills"], e["quantity"], e["slippage_bps"], e["fees"],
          e["seconds_to_fill"]) for e in f.execution],
        empty="no fills in this period",
    )

    for heading, events in (
        ("Circuit breakers", f.breakers),
        ("Trading state changes", f.trading),
        ("Force-executions", f.force),
    ):
        pdf.heading(f"{heading} ({events.total})")
        pdf.grid(["time", "event", "who", "why"], [(_time(t), k, a, d) for t, k, a, d in events.rows],
                 widths=(35, 30, 35, 90), empty="none in this period")
        if events.total > len(events.rows):
            pdf.line(f"... and {events.total - len(events.rows)} more (see the audit export)")

    pdf.heading("Ruleset versions in force")
    pdf.grid(
        ["version", "mode", "in force from", "until", "approved by", "submitted by", "drafted by"],
        [(f"v{r['version']}", r["mode"], _time(r["published_at"]), _time(r["until"]) or "-", r["published_by"],
          r["submitted_by"], r["created_by"]) for r in f.rulesets],
        empty="no published ruleset in force",
    )
    pdf.output(str(path))
    return pdf.page_no()
