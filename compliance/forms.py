from django import forms

from compliance.services.exports import DATE_HELP, FORMATS, KINDS
from governance.models import Strategy

KIND_LABELS = {
    "proposals": "Proposals, with every check",
    "votes": "Votes, with signatures and key ids",
    "orders": "Orders",
    "fills": "Fills (live and sandbox marked)",
    "audit": "Audit trail, with the chain's verification and head hash",
    "report": "Compliance report (PDF)",
}


class ExportForm(forms.Form):
    """The admin's export page: the same choices as `manage.py export`. Dates are checked by
    the service (export_period), so the page and the command refuse the same things alike."""

    kind = forms.ChoiceField(choices=[(k, KIND_LABELS[k]) for k in KINDS])
    fmt = forms.ChoiceField(label="Format", choices=[("csv", "CSV"), ("xlsx", "XLSX"), ("pdf", "PDF (report only)")])
    start = forms.CharField(label="From", help_text=DATE_HELP, widget=forms.DateInput(attrs={"type": "date"}))
    end = forms.CharField(label="To", help_text="included, when a date", widget=forms.DateInput(attrs={"type": "date"}))
    strategy = forms.ChoiceField(required=False)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        slugs = Strategy.objects.order_by("slug").values_list("slug", flat=True)
        self.fields["strategy"].choices = [("", "all strategies"), *((s, s) for s in slugs)]

    def clean(self):
        data = super().clean()
        kind, fmt = data.get("kind"), data.get("fmt")
        if kind and fmt and fmt not in FORMATS[kind]:
            self.add_error("fmt", f"{kind} exports as {' or '.join(FORMATS[kind])}")
        return data
