"""Developer tooling for the gettext catalogues: extract, update, check.

Each package of the source tree (``leadvault``, ``capture``, …) owns the
message ids found in its own files and keeps them in
``<package>/translations/<lang>/LC_MESSAGES/messages.po``. ``leadvault i18n
update`` extracts them (``babel.cfg``, :data:`leadvault.i18n.KEYWORDS`) and
merges them into each language's ``.po``; ``leadvault i18n check`` (and the
test suite) names every message id that is missing, empty or fuzzy.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator
from pathlib import Path

from babel import Locale
from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.pofile import read_po, write_po

from leadvault import i18n

ROOT = Path(__file__).resolve().parent.parent
NOT_PACKAGES = {"tests", "migrations", "bench", "build", "dist", "docs"}
_PLACEHOLDER = re.compile(r"%\((\w+)\)[sdif]")


class SourceTreeMissing(Exception):
    """The catalogue tools work on a source checkout (with ``babel.cfg``)."""


def translated_languages() -> list[str]:
    return [lang for lang in i18n.LANGUAGES if lang != i18n.DEFAULT_LANGUAGE]


def packages(root: Path = ROOT) -> list[Path]:
    """Every top-level Python package of the source tree."""
    if not (root / "babel.cfg").is_file():
        raise SourceTreeMissing(f"no babel.cfg in {root}: run this in a source checkout")
    return sorted(
        path
        for path in root.iterdir()
        if path.is_dir()
        # A namespace package (no __init__.py) counts too.
        and any(path.glob("*.py"))
        and path.name not in NOT_PACKAGES
        and not path.name.startswith(".")
    )


def po_path(package: Path, lang: str) -> Path:
    return package / "translations" / lang / "LC_MESSAGES" / f"{i18n.DOMAIN}.po"


def extract(package: Path, root: Path = ROOT) -> Catalog:
    """The message ids used in ``package``'s Python files and templates."""
    with (root / "babel.cfg").open() as handle:
        method_map, options_map = parse_mapping_cfg(handle)
    template = Catalog(project="Leadvault", domain=i18n.DOMAIN)
    found = extract_from_dir(
        str(package),
        method_map,
        options_map,
        keywords=i18n.KEYWORDS,
        comment_tags=("Translators:",),
        strip_comment_tags=True,
    )
    for filename, lineno, message, comments, context in found:
        location = (f"{package.name}/{filename}", lineno)
        template.add(message, None, [location], auto_comments=comments, context=context)
    return template


def _read(path: Path, lang: str) -> Catalog:
    with path.open("rb") as handle:
        return read_po(handle, locale=lang, domain=i18n.DOMAIN)


def _write(path: Path, catalog: Catalog) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    # Sorted, without line numbers: two people adding strings rarely collide.
    with path.open("wb") as handle:
        write_po(
            handle, catalog, width=100, sort_output=True, include_lineno=False, ignore_obsolete=True
        )


def new_catalog(lang: str) -> Catalog:
    catalog = Catalog(
        locale=lang,
        domain=i18n.DOMAIN,
        project="Leadvault",
        version="",
        copyright_holder="Leadvault contributors",
        msgid_bugs_address="",
        last_translator="Leadvault contributors",
        language_team=Locale.parse(lang).english_name,
    )
    catalog.header_comment = (
        f"# {Locale.parse(lang).english_name} messages of Leadvault.\n"
        "# Update with `leadvault i18n update`; see README.md (Translations)."
    )
    return catalog


def update(root: Path = ROOT) -> list[str]:
    """Merge the extracted ids into every package's catalogues; report what changed."""
    report = []
    for package in packages(root):
        template = extract(package, root)
        for lang in translated_languages():
            path = po_path(package, lang)
            if not len(template) and not path.exists():
                continue
            if path.exists():
                catalog = _read(path, lang)
                before = {m.id for m in catalog if m.id}
                created, revised = catalog.creation_date, catalog.revision_date
                catalog.update(template, no_fuzzy_matching=True)
                catalog.creation_date, catalog.revision_date = created, revised
            else:
                catalog = new_catalog(lang)
                catalog.update(template, no_fuzzy_matching=True)
                before = set()
            after = {m.id for m in catalog if m.id}
            _write(path, catalog)
            added, gone = len(after - before), len(before - after)
            if added or gone:
                report.append(f"{path.relative_to(root)}: {added} new, {gone} removed")
    return report


@dataclasses.dataclass(frozen=True)
class Problem:
    path: str
    message: str
    reason: str

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}: {self.message!r}"


def check(root: Path = ROOT) -> list[Problem]:
    """Every message id that a catalogue lacks, leaves empty or marks fuzzy, and
    every translation whose ``%(name)s`` placeholders differ from its id's."""
    problems: list[Problem] = []
    seen: dict[tuple[str, str], tuple[str, str]] = {}
    for package in packages(root):
        template = extract(package, root)
        for lang in translated_languages():
            path = po_path(package, lang)
            shown = str(path.relative_to(root))
            catalog = _read(path, lang) if path.exists() else Catalog(locale=lang)
            for message in template:
                if not message.id:
                    continue
                msgid = message.id if isinstance(message.id, str) else message.id[0]
                problems.extend(_check_one(catalog, msgid, shown, seen, lang))
    return problems


def _check_one(
    catalog: Catalog,
    msgid: str,
    shown: str,
    seen: dict[tuple[str, str], tuple[str, str]],
    lang: str,
) -> Iterator[Problem]:
    if re.fullmatch(r"[a-z_]+(\.[a-z0-9_]+)+", msgid):
        yield Problem(shown, msgid, "a dotted key, not English text")
        return
    entry = catalog.get(msgid)
    if entry is None:
        yield Problem(shown, msgid, "missing (run `leadvault i18n update`)")
        return
    text = entry.string if isinstance(entry.string, str) else (entry.string or ("",))[0]
    if not text:
        yield Problem(shown, msgid, "not translated")
        return
    if entry.fuzzy:
        yield Problem(shown, msgid, "fuzzy (check the translation, then remove the flag)")
        return
    if set(_PLACEHOLDER.findall(msgid)) != set(_PLACEHOLDER.findall(text)):
        yield Problem(shown, msgid, "placeholders differ from the message id's")
    earlier = seen.setdefault((lang, msgid), (shown, text))
    if earlier[1] != text:
        yield Problem(shown, msgid, f"translated differently in {earlier[0]}")
