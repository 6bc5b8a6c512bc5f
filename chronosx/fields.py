from decimal import Decimal, InvalidOperation

from django import forms
from django.core.exceptions import ValidationError
from django.db import models


class ExactDecimalField(models.CharField):
    """A Decimal stored as its exact string, so "0.0100" comes back as "0.0100".

    Django's DecimalField pads every value to a fixed scale; quantities and prices
    here must keep the exact value (and scale) an agent or a venue sent.
    """

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("max_length", 64)
        super().__init__(*args, **kwargs)

    def from_db_value(self, value, expression, connection):
        return None if value is None else Decimal(value)

    def to_python(self, value):
        if value is None or isinstance(value, Decimal):
            return value
        try:
            return Decimal(str(value))
        except InvalidOperation:
            raise ValidationError(f"{value!r} is not a decimal number")

    def formfield(self, **kwargs):
        # A decimal form field: compares by value, so an untouched field is not "changed".
        return models.Field.formfield(self, **{"form_class": forms.DecimalField, **kwargs})

    def run_validators(self, value):
        super().run_validators(None if value is None else str(value))

    def get_prep_value(self, value):
        if value is None:
            return None
        value = self.to_python(value)
        if not value.is_finite():
            raise ValueError("decimal values must be finite")
        return str(value)

    def value_to_string(self, obj):
        value = self.value_from_object(obj)
        return None if value is None else str(value)
