"""Results of the issue-22 bench modules (dispatch, reconnect storm): JSON in bench/results/ and
each module's target rows (MET/MISSED with the ratio) in its own marked block of
docs/PERFORMANCE.md, so that other bench modules can write theirs beside it."""

import json
import os
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
QUICK = os.environ.get("BENCH_QUICK", "") not in ("", "0", "false")
RESULTS = ROOT / "bench" / "results" / ("quick" if QUICK else "")
DOC = ROOT / "docs" / "PERFORMANCE.md"


def save(name, data):
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(data, indent=1) + "\n")


def write_rows(section, rows, *, source=None):
    """Replace (or append) the block `<!-- bench:<section> -->` … `<!-- /bench:<section> -->`;
    `source` is the command named as its writer (default `python -m bench.<section>`)."""
    start, end = f"<!-- bench:{section} -->", f"<!-- /bench:{section} -->"
    source = source or f"python -m bench.{section}"
    lines = [
        start,
        f"Written by `{source}` on {time.strftime('%Y-%m-%d %H:%M', time.gmtime())} UTC"
        + (" (BENCH_QUICK)" if QUICK else "")
        + ":",
        "",
        "| target | measured | |",
        "|---|---|---|",
        *(f"| {name} | {measured} | **{verdict}** |" for name, measured, verdict in rows),
        end,
    ]
    block = "\n".join(lines)
    text = DOC.read_text()
    if start in text and end in text:
        before, rest = text.split(start, 1)
        _, after = rest.split(end, 1)
        text = before + block + after
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    DOC.write_text(text)
