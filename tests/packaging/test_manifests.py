"""The shipped deployment files are safe behind a proxy: no `FORWARDED_ALLOW_IPS="*"` anywhere,
the internal listener bound to the host's loopback in compose and fenced by a NetworkPolicy in
Kubernetes."""

import re

import yaml
from django.conf import settings

ROOT = settings.BASE_DIR
SHIPPED = [
    *sorted((ROOT / "deploy" / "k8s").rglob("*.yaml")),
    *sorted((ROOT / "compose").glob("*")),
    ROOT / "Dockerfile",
    ROOT / "docker" / "entrypoint.sh",
    ROOT / ".env.example",
]


def test_it_never_trusts_every_proxy_in_a_shipped_file():
    for path in SHIPPED:
        text = path.read_text()
        assert not re.search(r"FORWARDED_ALLOW_IPS\W+\*", text), path
        assert not re.search(r"forwarded.allow.ips\W+\*", text, re.I), path


def test_it_binds_the_internal_listener_to_loopback_in_compose():
    compose = yaml.safe_load((ROOT / "compose" / "staging.yml").read_text())
    assert compose["services"]["internal"]["ports"] == ["127.0.0.1:3001:3001"]
    proxy_address = compose["services"]["proxy"]["networks"]["default"]["ipv4_address"]
    assert compose["x-app"]["environment"]["FORWARDED_ALLOW_IPS"] == proxy_address
    for name, service in compose["services"].items():
        for port in service.get("ports", []):
            assert name == "proxy" or str(port).startswith("127.0.0.1:"), (name, port)


def test_it_fences_the_internal_listener_and_metrics_with_network_policies():
    policies = {
        doc["metadata"]["name"]: doc
        for doc in yaml.safe_load_all((ROOT / "deploy" / "k8s" / "base" / "networkpolicy.yaml").read_text())
    }
    internal = policies["halobestie-internal"]["spec"]
    assert internal["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "internal"
    assert [p["port"] for rule in internal["ingress"] for p in rule["ports"]] == [3001]
    sources = [s["namespaceSelector"]["matchLabels"] for rule in internal["ingress"] for s in rule["from"]]
    assert {tuple(s.values())[0] for s in sources} == {"vpn", "monitoring"}
    for name in ("halobestie-public", "halobestie-scheduler"):
        rules = policies[name]["spec"]["ingress"]
        metrics = [r for r in rules if [p["port"] for p in r["ports"]] == [9100]]
        assert [s["namespaceSelector"]["matchLabels"] for s in metrics[0]["from"]] == [
            {"kubernetes.io/metadata.name": "monitoring"}
        ]
