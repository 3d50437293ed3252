"""Check deploy/monitoring/ against the metrics the code exports (`make lint` runs it).

- Every metric name in an alert rule (rules.yml) or a dashboard query (grafana-dashboard.json)
  is one that halobestie/server/metrics.py exports (a histogram as `_bucket`, `_sum`, `_count`, a
  counter with its `_total`).
- prometheusrule.yaml (Prometheus Operator) holds exactly the groups of rules.yml.
  `--write` regenerates it from rules.yml.

promtool checks the rules' syntax and runs their unit tests (`make lint`); docs/metrics.md is
compared with the registry by tests/halobestie/test_metrics_list.py.
"""

import argparse
import json
import re
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
MONITORING = ROOT / "deploy" / "monitoring"
RULES = MONITORING / "rules.yml"
OPERATOR_RULES = MONITORING / "prometheusrule.yaml"
DASHBOARD = MONITORING / "grafana-dashboard.json"
NAME = re.compile(r"\bhalobestie_[a-z0-9_]+")

OPERATOR_HEADER = """\
# GENERATED from rules.yml by `python scripts/check_monitoring.py --write`: edit rules.yml.
# The alert rules for the Prometheus Operator (kube-prometheus-stack): apply it in the namespace
# your Prometheus selects rules from, with the labels its ruleSelector wants (release: …).
"""


def exported_series():
    """Every series name the registry exports, e.g. halobestie_queue_wait_seconds_bucket."""
    sys.path.insert(0, str(ROOT))
    from prometheus_client import REGISTRY

    import halobestie.server.metrics  # noqa: F401 (defines every metric of the project)

    names = set()
    for family in REGISTRY.collect():
        if not family.name.startswith("halobestie_"):
            continue
        suffixes = {
            "counter": ["_total"],
            "histogram": ["_bucket", "_sum", "_count"],
            "summary": ["", "_sum", "_count"],
        }.get(family.type, [""])
        names.update(family.name + suffix for suffix in suffixes)
    return names


def rule_expressions(groups):
    for group in groups:
        for rule in group["rules"]:
            yield f"rule {rule.get('alert') or rule.get('record')}", rule["expr"]


def dashboard_expressions(dashboard):
    def panels(items):
        for panel in items:
            yield panel
            yield from panels(panel.get("panels", []))

    for panel in panels(dashboard["panels"]):
        for target in panel.get("targets", []):
            yield f"panel {panel.get('title')!r}", target["expr"]


def operator_document(groups):
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {
            "name": "halobestie",
            "labels": {"app.kubernetes.io/name": "halobestie", "role": "alert-rules"},
        },
        "spec": {"groups": groups},
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="regenerate prometheusrule.yaml from rules.yml")
    args = parser.parse_args(argv)

    groups = yaml.safe_load(RULES.read_text(encoding="utf-8"))["groups"]
    if args.write:
        text = yaml.safe_dump(operator_document(groups), sort_keys=False, allow_unicode=True, width=100)
        OPERATOR_RULES.write_text(OPERATOR_HEADER + text, encoding="utf-8")
        print(f"wrote {OPERATOR_RULES.relative_to(ROOT)}")

    problems = []
    if yaml.safe_load(OPERATOR_RULES.read_text(encoding="utf-8")) != operator_document(groups):
        problems.append(
            f"{OPERATOR_RULES.relative_to(ROOT)} differs from rules.yml: run "
            "`python scripts/check_monitoring.py --write`"
        )
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    exported = exported_series()
    expressions = [*rule_expressions(groups), *dashboard_expressions(dashboard)]
    if not expressions:
        problems.append("no expressions found")
    used = set()
    for where, expr in expressions:
        for name in NAME.findall(expr):
            used.add(name)
            if name not in exported:
                problems.append(f"{where}: {name} is not an exported metric (docs/metrics.md)")
    for problem in problems:
        print(problem, file=sys.stderr)
    if problems:
        return 1
    print(
        f"monitoring: {len(expressions)} queries use {len(used)} exported series; PrometheusRule = rules.yml"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
