"""The runtime config as a form: one typed field per key, derived from the schema's FIELD_INFO
(runtime/schema.py), so a key added there gets its field here without an edit. The form parses
what staff type (rupiah with dots, one item per line); the schema decides what is valid, and
each of its errors is shown next to its field."""

import re

from django import forms
from django.core.exceptions import ValidationError
from django.utils.functional import lazy
from django.utils.translation import gettext_lazy as _

from halobestie.runtime.models import RuntimeConfig
from halobestie.runtime.schema import GROUPS, config_keys, field_info, int_limits, validate_values

UNITS = {
    "seconds": _("seconds"),
    "minutes": _("minutes"),
    "days": _("days"),
    "percent": _("percent"),
    "money": _("rupiah"),
    "integer": "",
}


def rupiah(value):
    """15000 → "15.000"."""
    return f"{value:,}".replace(",", ".")


class MoneyField(forms.IntegerField):
    """Whole rupiah; accepts "Rp15.000", "15.000" and "15000"."""

    widget = forms.TextInput(attrs={"inputmode": "numeric", "class": "vIntegerField"})

    def to_python(self, value):
        if isinstance(value, str):
            value = re.sub(r"^\s*rp\.?\s*", "", value, flags=re.IGNORECASE).replace(".", "").strip()
        return super().to_python(value)

    def prepare_value(self, value):
        return rupiah(value) if isinstance(value, int) and not isinstance(value, bool) else value


class LinesField(forms.CharField):
    """A list, one item per line; blank lines are dropped."""

    def __init__(self, **kwargs):
        super().__init__(widget=forms.Textarea(attrs={"rows": 6, "cols": 60}), **kwargs)

    def to_python(self, value):
        return [line.strip() for line in (value or "").splitlines() if line.strip()]

    def prepare_value(self, value):
        if isinstance(value, (list, tuple)):
            return "\n".join(self.format_item(item) for item in value)
        return value

    def format_item(self, item):
        return str(item)


class SecondsListField(LinesField):
    def to_python(self, value):
        numbers = []
        for number, line in enumerate(super().to_python(value), start=1):
            if not re.fullmatch(r"\d+", line):
                raise ValidationError(_("Line %(number)s is not a whole number.") % {"number": number})
            numbers.append(int(line))
        return numbers


class PackagesField(LinesField):
    """One package per line: code | name | minutes | price | share percent (may be empty)."""

    def to_python(self, value):
        packages = []
        for number, line in enumerate(super().to_python(value), start=1):
            parts = [part.strip() for part in line.split("|")]
            if len(parts) == 4:
                parts.append("")
            if len(parts) != 5:
                raise ValidationError(
                    _("Line %(number)s: write code | name | minutes | price | share (share may be empty).")
                    % {"number": number}
                )
            code, name, minutes, price, share = parts
            price = re.sub(r"^rp\.?\s*", "", price, flags=re.IGNORECASE).replace(".", "")
            if not all(re.fullmatch(r"\d+", part) for part in (minutes, price, share or "0")):
                raise ValidationError(
                    _("Line %(number)s: minutes, price and share must be whole numbers.") % {"number": number}
                )
            packages.append({
                "code": code, "name": name, "duration_minutes": int(minutes), "price_idr": int(price),
                "mitra_share_percent": int(share) if share else None,
            })  # fmt: skip
        return packages

    def format_item(self, item):
        share = item.get("mitra_share_percent")
        return " | ".join(
            [item["code"], item["name"], str(item["duration_minutes"]), rupiah(item["price_idr"]),
             "" if share is None else str(share)]
        ).rstrip(" |")  # fmt: skip


def limits_text(name, kind):
    limits = int_limits(name)
    if limits is None or kind not in UNITS:
        return ""
    low, high = (rupiah(limit) for limit in limits) if kind == "money" else limits
    if not UNITS[kind]:
        return str(_("Allowed: %(low)s to %(high)s.") % {"low": low, "high": high})
    return str(_("Allowed: %(low)s to %(high)s %(unit)s.") % {"low": low, "high": high, "unit": UNITS[kind]})


def help_text(name):
    info = field_info(name)
    return " ".join(str(part) for part in (info.help_text, limits_text(name, info.kind)) if part)


def form_field(name):
    """The form field of one config key, from its FieldInfo."""
    info = field_info(name)
    # Lazy: the form class is built once, each request reads it in its own language.
    common = {"label": info.label, "help_text": lazy(help_text, str)(name)}
    if info.kind == "money":
        return MoneyField(**common)
    if info.kind in UNITS:
        return forms.IntegerField(**common)
    if info.kind == "choice":
        return forms.ChoiceField(choices=info.choices, **common)
    if info.kind == "lines":
        return LinesField(**common)
    if info.kind == "seconds_list":
        return SecondsListField(**common)
    if info.kind == "packages":
        return PackagesField(**common)
    return forms.CharField(widget=forms.Textarea(attrs={"rows": 3, "cols": 60}), **common)


def fieldsets(extra=(), *, editable=True):
    """The admin's fieldsets: the keys by group, in the schema's order."""
    grouped = {}
    for name in config_keys():
        grouped.setdefault(field_info(name).group, []).append(name)
    sets = [(GROUPS.get(group, GROUPS["other"]), {"fields": names}) for group, names in grouped.items()]
    sets.append((_("Version"), {"fields": [*(["based_on_version"] if editable else []), *extra]}))
    return sets


class RuntimeConfigFormBase(forms.ModelForm):
    # The version the form was loaded at: a save over a newer one would silently undo it.
    based_on_version = forms.IntegerField(widget=forms.HiddenInput, required=False)

    class Meta:
        model = RuntimeConfig
        fields = []

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        current = current_values(self.instance)
        for name in config_keys():
            self.initial.setdefault(name, current.get(name))
        self.initial.setdefault("based_on_version", self.instance.version)

    def clean(self):
        cleaned = super().clean()
        based_on = cleaned.get("based_on_version")
        in_force = RuntimeConfig.objects.filter(pk=1).values_list("version", flat=True).first()
        if based_on is not None and in_force is not None and based_on != in_force:
            raise ValidationError(
                _(
                    "Someone saved version %(version)s while you were editing: reload the page and "
                    "make your change again."
                )
                % {"version": in_force}
            )
        # The schema judges what parsed (a key that did not parse stays out and is not judged twice).
        values = {name: cleaned[name] for name in config_keys() if name in cleaned}
        try:
            validate_values(values)
        except ValidationError as error:
            for key, messages in error.message_dict.items():
                name, _dot, rest = key.partition(".")
                if name in self.errors:
                    continue
                if name == "packages" and rest:
                    number = int(rest.split(".")[0]) + 1
                    messages = [
                        _("Line %(number)s: %(message)s") % {"number": number, "message": m} for m in messages
                    ]
                self.add_error(name if name in self.fields else None, messages)
        self.config_values = values
        return cleaned


def current_values(row):
    """The values in force of `row` with every key filled in (defaults for keys saved before
    they existed)."""
    try:
        return validate_values(row.values or {}).to_json()
    except ValidationError:
        return dict(row.values or {})


def runtime_config_form():
    """A form class with one declared field per schema key."""
    return type(
        "RuntimeConfigForm", (RuntimeConfigFormBase,), {name: form_field(name) for name in config_keys()}
    )


def display_value(name, value):
    """A stored value as staff read it (lists one per line, rupiah with dots)."""
    field = form_field(name)
    if isinstance(field, forms.ChoiceField):
        return str(dict(field.choices).get(value, value))
    if value is None:
        return "—"
    return str(field.prepare_value(value))


def describe_change(name, before, after):
    """One line of a history entry's diff: (label, before, after) as staff read them. Of a long
    list only what was removed and what was added is shown."""
    label = str(field_info(name).label)
    info_kind = field_info(name).kind
    if info_kind == "lines" and isinstance(before, list) and isinstance(after, list):
        removed = [item for item in before if item not in after]
        added = [item for item in after if item not in before]
        if removed or added:
            return (
                label,
                "− " + ", ".join(removed) if removed else "",
                "+ " + ", ".join(added) if added else "",
            )
    before_text = "—" if before is None else display_value(name, before)
    after_text = "—" if after is None else display_value(name, after)
    return label, before_text, after_text
