"""The documented metric list (docs/metrics.md) is the exported one: every metric the processes
export is documented with its type and labels, and every documented one is exported."""

import re

from django.conf import settings
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

_ROW = re.compile(r"^\| `(halobestie_[a-z0-9_]+)` \| (\w+) \|([^|]*)\|")


def documented():
    """{name: (type, labels)} from the table in docs/metrics.md."""
    rows = {}
    for line in (settings.BASE_DIR / "docs" / "metrics.md").read_text(encoding="utf-8").splitlines():
        match = _ROW.match(line)
        if match:
            name, kind, labels = match.groups()
            assert name not in rows, f"{name} is listed twice"
            rows[name] = (kind, tuple(re.findall(r"`([a-z_]+)`", labels)))
    return rows


def exported_name(name, kind):
    return f"{name}_total" if kind == "counter" else name


def registered():
    """{name: (type, labels)} of this process's registry (every module defining metrics is
    imported by Django's set-up)."""
    found = {}
    for collector in list(REGISTRY._collector_to_names):
        for family in collector.describe() if hasattr(collector, "describe") else collector.collect():
            if family.name.startswith("halobestie_"):
                labels = tuple(getattr(collector, "_labelnames", ()))
                found[exported_name(family.name, family.type)] = (family.type, labels)
    return found


def test_it_documents_every_exported_metric_and_nothing_else():
    assert documented() == registered()


def test_it_serves_every_documented_metric_at_the_internal_listeners_metrics(internal_client):
    response = internal_client.get("/metrics")
    assert response.status_code == 200
    served = {
        exported_name(family.name, family.type)
        for family in text_string_to_metric_families(response.content.decode())
        if family.name.startswith("halobestie_")
    }
    assert served == set(documented())
