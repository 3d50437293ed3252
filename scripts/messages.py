"""The Bahasa Indonesia catalogue of our own texts: `locale/id/LC_MESSAGES/django.po` and its
compiled `django.mo`, both committed, so `make run`, the tests and the image need no build step and
no GNU gettext.

    python scripts/messages.py update   # `make messages`: extract, merge into django.po, compile .mo
    python scripts/messages.py check    # `make lint` and tests/halobestie/test_locale.py

Our code says its texts in English, marked for translation (`gettext_lazy as _` in models, admin,
forms; `{% translate %}` in templates), and the catalogue says them in Indonesian. `update` does
what `manage.py makemessages -l id` + `compilemessages` would, in Python: it reads every `_()`,
`gettext…`, `pgettext…`, `ngettext…` call with literal strings in our apps, adds new texts with an
empty translation, drops texts no longer in the sources, keeps every translation, and writes the
.mo. Entries are sorted and carry file names without line numbers, so parallel branches merge
cleanly. `check` fails when the catalogue is not what `update` would write from the sources, when
an entry is untranslated or fuzzy, when a translation loses a placeholder, or when the .mo is stale.
"""

import ast
import re
import struct
import sys
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Our apps (every top-level package with an apps.py: a new app is included by itself) and the
# project templates.
SOURCE_DIRS = tuple(sorted(path.parent.name for path in ROOT.glob("*/apps.py")))
TEMPLATE_DIRS = ("templates",)
LOCALE_DIR = ROOT / "locale" / "id" / "LC_MESSAGES"
PO_PATH = LOCALE_DIR / "django.po"
MO_PATH = LOCALE_DIR / "django.mo"

HEADER = """\
# Bahasa Indonesia for the HaloBestie backend: our own texts (Django's and DRF's ship their own).
# Written by `make messages` (scripts/messages.py): add or fix translations (msgstr) here, never
# msgids (those come from the code); then run `make messages` again to compile django.mo.
"""
HEADER_MSGSTR = (
    "Project-Id-Version: halobestie\n"
    "Language: id\n"
    "MIME-Version: 1.0\n"
    "Content-Type: text/plain; charset=UTF-8\n"
    "Content-Transfer-Encoding: 8bit\n"
    "Plural-Forms: nplurals=1; plural=0;\n"
)

# function name -> positions of (context, singular, plural); None where the function has none.
KEYWORDS = {
    "_": (None, 0, None),
    "gettext": (None, 0, None),
    "gettext_lazy": (None, 0, None),
    "gettext_noop": (None, 0, None),
    "pgettext": (0, 1, None),
    "pgettext_lazy": (0, 1, None),
    "ngettext": (None, 0, 1),
    "ngettext_lazy": (None, 0, 1),
    "npgettext": (0, 1, 2),
    "npgettext_lazy": (0, 1, 2),
}
PLACEHOLDER = re.compile(r"%\(\w+\)[-#0 +]*\d*(?:\.\d+)?[sdifrxXeEgGc]|%[sdif]|\{\w*\}")


@dataclass
class Entry:
    msgid: str
    msgctxt: str | None = None
    msgid_plural: str | None = None
    msgstr: list[str] = field(default_factory=lambda: [""])
    flags: set[str] = field(default_factory=set)
    comments: list[str] = field(default_factory=list)  # translator comments, kept as written
    files: set[str] = field(default_factory=set)

    @property
    def key(self):
        return (self.msgctxt, self.msgid)


# --- extraction -----------------------------------------------------------------------------


def _literal(node):
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    return None


def _python_messages(path, relative):
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        name = getattr(node.func, "id", None) or getattr(node.func, "attr", None)
        if name not in KEYWORDS:
            continue
        context_at, singular_at, plural_at = KEYWORDS[name]
        singular = _literal(node.args[singular_at]) if len(node.args) > singular_at else None
        if singular is None:
            continue  # a variable: translated at run time if its value is in the catalogue
        context = _literal(node.args[context_at]) if context_at is not None else None
        plural = (
            _literal(node.args[plural_at]) if plural_at is not None and len(node.args) > plural_at else None
        )
        yield Entry(msgid=singular, msgctxt=context, msgid_plural=plural, files={relative})


def _template_messages(path, relative):
    from django.utils.translation.template import templatize

    source = templatize(path.read_text(encoding="utf-8"), origin=str(path))
    for match in re.finditer(
        r"\b(?:n?p?gettext)\((?:[^()'\"]|'(?:\\.|[^'\\])*'|\"(?:\\.|[^\"\\])*\")*\)", source
    ):
        call = ast.parse(match.group(0), mode="eval").body
        name = call.func.id
        context_at, singular_at, plural_at = KEYWORDS[name]
        yield Entry(
            msgid=_literal(call.args[singular_at]),
            msgctxt=_literal(call.args[context_at]) if context_at is not None else None,
            msgid_plural=_literal(call.args[plural_at]) if plural_at is not None else None,
            files={relative},
        )


def source_files():
    for directory in SOURCE_DIRS:
        for path in sorted((ROOT / directory).rglob("*.py")):
            if "migrations" not in path.parts:
                yield path, _python_messages
    for directory in TEMPLATE_DIRS:
        for path in sorted((ROOT / directory).rglob("*.html")):
            yield path, _template_messages


def extract():
    """Every marked text of our sources, merged by (context, msgid); and the misuses found."""
    entries, problems = {}, []
    for path, reader in source_files():
        relative = path.relative_to(ROOT).as_posix()
        for entry in reader(path, relative):
            known = entries.setdefault(entry.key, entry)
            known.files |= entry.files
            known.msgid_plural = known.msgid_plural or entry.msgid_plural
        if reader is _python_messages:
            problems.extend(_fstring_problems(path, relative))
    return entries, sorted(set(problems))


def _fstring_problems(path, relative):
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and node.args:
            name = getattr(node.func, "id", None) or getattr(node.func, "attr", None)
            if name in KEYWORDS and any(isinstance(argument, ast.JoinedStr) for argument in node.args):
                yield f"{relative}:{node.lineno}: an f-string in {name}() is never translated"


# --- the .po file ---------------------------------------------------------------------------

_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\t": "\\t", "\r": "\\r"}
_UNESCAPES = {
    "\\": "\\",
    '"': '"',
    "n": "\n",
    "t": "\t",
    "r": "\r",
    "a": "\a",
    "b": "\b",
    "f": "\f",
    "v": "\v",
}


def _quote(text):
    return '"' + "".join(_ESCAPES.get(character, character) for character in text) + '"'


def _unquote(token):
    body = token.strip()
    if len(body) < 2 or body[0] != '"' or body[-1] != '"':
        raise ValueError(f"not a quoted string: {token!r}")
    return re.sub(r"\\(.)", lambda match: _UNESCAPES.get(match.group(1), match.group(1)), body[1:-1])


def read_po(path=PO_PATH):
    """The entries of a .po file, by (context, msgid); the header entry is under (None, "")."""
    entries = {}
    entry, target = Entry(msgid=None, msgstr=[]), None

    def flush():
        nonlocal entry
        if entry.msgid is not None:
            entries[entry.key] = entry
        entry = Entry(msgid=None, msgstr=[])

    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        line = raw.strip()
        if line.startswith("#~"):
            continue  # obsolete entries are dropped
        if not line or line.startswith("#"):
            if entry.msgstr:
                flush()
            target = None
            if line.startswith("#,"):
                entry.flags |= {flag.strip() for flag in line[2:].split(",") if flag.strip()}
            elif line.startswith("#:"):
                entry.files |= {reference.split(":")[0] for reference in line[2:].split()}
            elif line.startswith("# ") or line == "#":
                entry.comments.append(line)
            continue
        if line.startswith('"'):
            if target is None:
                raise ValueError(f"{path}:{number}: a continuation line without a keyword")
            name, index = target
            if name == "msgstr":
                entry.msgstr[index] += _unquote(line)
            else:
                setattr(entry, name, getattr(entry, name) + _unquote(line))
            continue
        keyword, _, rest = line.partition(" ")
        value = _unquote(rest)
        if keyword in ("msgctxt", "msgid") and entry.msgstr:
            flush()
        if keyword in ("msgctxt", "msgid", "msgid_plural"):
            setattr(entry, keyword, value)
            target = (keyword, None)
        elif keyword == "msgstr" or re.fullmatch(r"msgstr\[\d+\]", keyword):
            entry.msgstr.append(value)
            target = ("msgstr", len(entry.msgstr) - 1)
        else:
            raise ValueError(f"{path}:{number}: unknown keyword {keyword!r}")
    flush()
    return entries


def render_po(entries):
    lines = [HEADER.rstrip("\n"), 'msgid ""', 'msgstr ""']
    lines += [_quote(line) for line in HEADER_MSGSTR.splitlines(keepends=True)]
    for entry in sorted(
        (entry for key, entry in entries.items() if key != (None, "")),
        key=lambda entry: (entry.msgctxt or "", entry.msgid),
    ):
        lines.append("")
        lines += entry.comments
        lines += [f"#: {name}" for name in sorted(entry.files)]
        if entry.flags:
            lines.append("#, " + ", ".join(sorted(entry.flags)))
        if entry.msgctxt is not None:
            lines.append(f"msgctxt {_quote(entry.msgctxt)}")
        lines.append(f"msgid {_quote(entry.msgid)}")
        if entry.msgid_plural is not None:
            lines.append(f"msgid_plural {_quote(entry.msgid_plural)}")
            for index, text in enumerate(entry.msgstr or [""]):
                lines.append(f"msgstr[{index}] {_quote(text)}")
        else:
            lines.append(f"msgstr {_quote((entry.msgstr or [''])[0])}")
    return "\n".join(lines) + "\n"


def merge(extracted, existing):
    """The catalogue for `extracted`, keeping the translations, comments and flags of `existing`."""
    merged = {}
    for key, entry in extracted.items():
        old = existing.get(key)
        merged[key] = Entry(
            msgid=entry.msgid,
            msgctxt=entry.msgctxt,
            msgid_plural=entry.msgid_plural,
            msgstr=list(old.msgstr) if old else [""],
            flags=set(old.flags) if old else set(),
            comments=list(old.comments) if old else [],
            files=set(entry.files),
        )
    return merged


# --- the .mo file ---------------------------------------------------------------------------


def compile_mo(entries):
    """GNU .mo bytes (what msgfmt writes, without the optional hash table): untranslated and
    fuzzy entries left out, as msgfmt does."""
    pairs = {"": HEADER_MSGSTR}
    for key, entry in entries.items():
        if key == (None, "") or "fuzzy" in entry.flags or not all(entry.msgstr):
            continue
        original = entry.msgid if entry.msgctxt is None else f"{entry.msgctxt}\x04{entry.msgid}"
        if entry.msgid_plural is not None:
            original += "\0" + entry.msgid_plural
        pairs[original] = "\0".join(entry.msgstr)
    originals = sorted(pairs, key=lambda text: text.encode("utf-8"))
    ids = [text.encode("utf-8") for text in originals]
    strs = [pairs[text].encode("utf-8") for text in originals]
    count = len(ids)
    originals_table = 7 * 4
    translations_table = originals_table + count * 8
    data_start = translations_table + count * 8
    table, data = [], b""
    for text in ids + strs:
        table.append((len(text), data_start + len(data)))
        data += text + b"\0"
    header = struct.pack("<7I", 0x950412DE, 0, count, originals_table, translations_table, 0, data_start)
    return header + b"".join(struct.pack("<2I", *pair) for pair in table) + data


# --- commands -------------------------------------------------------------------------------


def _setup_django():
    # templatize needs no settings, but importing django.template does want them configured.
    from django.conf import settings

    if not settings.configured:
        settings.configure()


def update():
    _setup_django()
    extracted, problems = extract()
    existing = read_po() if PO_PATH.exists() else {}
    merged = merge(extracted, existing)
    LOCALE_DIR.mkdir(parents=True, exist_ok=True)
    PO_PATH.write_text(render_po(merged), encoding="utf-8")
    MO_PATH.write_bytes(compile_mo(merged))
    untranslated = [entry.msgid for entry in merged.values() if not all(entry.msgstr)]
    print(f"{PO_PATH.relative_to(ROOT)}: {len(merged)} texts, {len(untranslated)} untranslated")
    for msgid in untranslated:
        print(f"  untranslated: {msgid!r}")
    for problem in problems:
        print(f"  {problem}")
    return 0


def problems():
    """Everything wrong with the committed catalogue, as sentences (empty: all is well)."""
    _setup_django()
    extracted, found = extract()
    if not PO_PATH.exists():
        return [f"{PO_PATH.relative_to(ROOT)} is missing: run `make messages`"]
    existing = read_po()
    existing.pop((None, ""), None)
    for key in sorted(set(extracted) - set(existing), key=str):
        found.append(f"not in the catalogue (run `make messages`, then translate): {key[1]!r}")
    for key in sorted(set(existing) - set(extracted), key=str):
        found.append(f"no longer in the sources (run `make messages`): {key[1]!r}")
    for entry in existing.values():
        if "fuzzy" in entry.flags:
            found.append(f"fuzzy (check the translation, then remove the flag): {entry.msgid!r}")
        if not all(entry.msgstr):
            found.append(f"untranslated: {entry.msgid!r}")
        elif sorted(PLACEHOLDER.findall(entry.msgid)) != sorted(PLACEHOLDER.findall(entry.msgstr[0])):
            found.append(f"placeholders differ between {entry.msgid!r} and {entry.msgstr[0]!r}")
    expected = render_po(merge(extracted, existing))
    if not found and PO_PATH.read_text(encoding="utf-8") != expected:
        found.append(f"{PO_PATH.relative_to(ROOT)} is not as `make messages` writes it: run it")
    if not MO_PATH.exists() or MO_PATH.read_bytes() != compile_mo(existing):
        found.append(f"{MO_PATH.relative_to(ROOT)} is stale: run `make messages`")
    return found


def check():
    found = problems()
    for problem in found:
        print(problem, file=sys.stderr)
    if not found:
        print(f"{PO_PATH.relative_to(ROOT)}: up to date, every text translated")
    return 1 if found else 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    commands = {"update": update, "check": check}
    if len(sys.argv) != 2 or sys.argv[1] not in commands:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    sys.exit(commands[sys.argv[1]]())
