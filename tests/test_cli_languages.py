"""Each command's language option takes every language of ``i18n.LANGUAGES`` and no
other code: the commands read that tuple (they spelled ["en", "de"] each), so adding a
language is one change. Read from the command tree as ``leadvault`` parses it (the
arguments converted and checked, the command not run)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import click
import pytest

from leadvault import i18n
from leadvault.cli import cli

# What each command needs besides its language to parse: (option, other arguments).
LANGUAGE_OPTIONS = {
    ("consent", "add-text"): ("--lang", ["--purpose", "newsletter", "--text", "I agree."]),
    ("import",): ("--language", ["{file}"]),
    ("nurture", "preview"): ("--lang", ["onboarding", "welcome"]),
    ("nurture", "test-send"): ("--lang", ["onboarding", "welcome", "--to", "me@example.com"]),
    ("sales", "add"): ("--language", ["--email", "anna@sales.example", "--name", "Anna"]),
    # Not given: the salesperson's language stays as it is.
    ("sales", "edit"): ("--language", ["anna@sales.example"]),
}
# Names an option had, still taken (scripts keep working) but not shown in its help.
OLD_NAMES = {("sales", "add"): "--lang", ("sales", "edit"): "--lang"}


def _commands(
    group: click.Group, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], click.Command]]:
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            yield from _commands(command, (*path, name))
        else:
            yield (*path, name), command


def _parsed(command: click.Command, name: str, args: list[str]) -> dict[str, object]:
    with command.make_context(name, args) as context:
        return dict(context.params)


def test_every_language_option_takes_each_language_and_only_those(tmp_path: Path):
    contacts = tmp_path / "contacts.csv"
    contacts.write_text("email\n", encoding="utf-8")
    found = {
        path: (command, option)
        for path, command in _commands(cli)
        for option in command.params
        if isinstance(option, click.Option) and "lang" in (option.name or "")
    }
    assert set(found) == set(LANGUAGE_OPTIONS)  # a new one is listed above, so checked
    for path, (command, option) in found.items():
        flag, others = LANGUAGE_OPTIONS[path]
        assert flag in option.opts
        args = [arg.format(file=contacts) for arg in others]
        for lang in i18n.LANGUAGES:
            assert _parsed(command, path[-1], [*args, flag, lang])[option.name] == lang
        # The very tuple, not a copy spelled again (click keeps a tuple as given); the
        # help shows it as [en|de].
        assert isinstance(option.type, click.Choice), path
        assert option.type.choices is i18n.LANGUAGES, path
        with pytest.raises(click.BadParameter):
            _parsed(command, path[-1], [*args, flag, "xx"])
        if path == ("sales", "edit"):
            assert option.default is None
        elif not option.required:
            assert option.default == i18n.DEFAULT_LANGUAGE, path
        old = OLD_NAMES.get(path)
        if old is not None:
            assert _parsed(command, path[-1], [*args, old, "de"])[option.name] == "de"
            with pytest.raises(click.BadParameter) as refused:
                _parsed(command, path[-1], [*args, old, "xx"])
            assert refused.value.format_message().startswith(f"Invalid value for '{flag}': ")
            with click.Context(command, info_name=path[-1]) as context:
                assert old not in command.get_help(context).replace(flag, "")
