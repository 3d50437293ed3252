"""Check that requirements.lock matches requirements.txt (`make lint` runs it, offline).

requirements.txt names the runtime packages we chose, pinned; requirements.lock (written by
`make lock`: uv pip compile --generate-hashes) pins every package the image installs, transitive
ones included, each with its hashes, and the Dockerfile installs it with --require-hashes. This
fails when someone edits requirements.txt without `make lock`: a package of requirements.txt
missing from the lock or at another version, a lock entry that says it comes from
requirements.txt but is no longer there, or an entry without hashes.
"""

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?==([^\s;\\]+)")


def canonical(name):
    return re.sub(r"[-_.]+", "-", name).lower()


def requirements(path):
    """{name: version} of requirements.txt; every line must be an exact pin."""
    pins, problems = {}, []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        match = PIN.match(line)
        if match is None:
            problems.append(f"{path.name}:{number}: not an exact pin (name==version): {line!r}")
            continue
        pins[canonical(match.group(1))] = match.group(3)
    return pins, problems


def lock_entries(path):
    """{name: (version, hash count, is from requirements.txt)} of the lock file."""
    entries = {}
    current = None
    for line in path.read_text(encoding="utf-8").splitlines():
        match = PIN.match(line)
        if match:
            current = canonical(match.group(1))
            entries[current] = [match.group(3), 0, False]
        elif current and line.strip().startswith("--hash=sha256:"):
            entries[current][1] += 1
        elif current and re.search(r"#\s+(via\s+)?-r requirements\.txt$", line):
            entries[current][2] = True
    return {name: tuple(entry) for name, entry in entries.items()}


def main():
    pins, problems = requirements(ROOT / "requirements.txt")
    lock_path = ROOT / "requirements.lock"
    if not lock_path.is_file():
        print("requirements.lock is missing: run `make lock`", file=sys.stderr)
        return 1
    entries = lock_entries(lock_path)
    for name, version in sorted(pins.items()):
        if name not in entries:
            problems.append(f"{name}=={version} is in requirements.txt but not in requirements.lock")
        elif entries[name][0] != version:
            problems.append(
                f"{name}: requirements.txt pins {version}, requirements.lock has {entries[name][0]}"
            )
        elif not entries[name][2]:
            problems.append(f"{name}: requirements.lock does not say it comes from requirements.txt")
    for name, (version, hashes, is_direct) in sorted(entries.items()):
        if is_direct and name not in pins:
            problems.append(
                f"{name}=={version} comes from requirements.txt in the lock, but is no longer there"
            )
        if hashes == 0:
            problems.append(f"{name}=={version} has no hashes in requirements.lock")
    for problem in problems:
        print(problem, file=sys.stderr)
    if problems:
        print("refresh the lock with `make lock`", file=sys.stderr)
        return 1
    print(f"requirements.lock: {len(entries)} hashed packages; requirements.txt's {len(pins)} at their pins")
    return 0


if __name__ == "__main__":
    sys.exit(main())
