"""What the apps' developers and operators read stays true to the code."""

import re
import subprocess
import sys
from pathlib import Path

from django.conf import settings

ROOT = Path(settings.BASE_DIR)


def test_it_keeps_the_committed_openapi_schema_current(tmp_path):
    target = tmp_path / "openapi.yaml"
    result = subprocess.run(
        [sys.executable, "manage.py", "spectacular", "--validate", "--fail-on-warn", "--file", str(target)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**__import__("os").environ, "TESTING": "true"},
    )
    assert result.returncode == 0, result.stderr
    committed = (ROOT / "docs" / "openapi.yaml").read_text()
    assert target.read_text() == committed, "docs/openapi.yaml is stale: run `make openapi`"


def test_it_lists_every_environment_variable_in_env_example():
    names = set()
    for path in ROOT.glob("**/*.py"):
        # The servers' configuration; bench/ is a hand-run tool with its own knobs (docs/PERFORMANCE.md).
        if {".venv", "tests", "bench"} & set(path.parts):
            continue
        text = path.read_text()
        names |= set(re.findall(r'\benv\(\s*"([A-Z][A-Z0-9_]+)"', text))
        names |= set(re.findall(r'os\.environ(?:\.get)?[\[(]\s*"([A-Z][A-Z0-9_]+)"', text))
    documented = set(re.findall(r"^([A-Z][A-Z0-9_]+)=", (ROOT / ".env.example").read_text(), re.M))
    ignored = {"DJANGO_SETTINGS_MODULE", "TESTING"}
    assert names - documented - ignored == set()
