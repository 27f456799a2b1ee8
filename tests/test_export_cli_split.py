"""The export package's command line is cut by role (STYLE: split past ~400 lines):
``export.cli`` holds ``leadvault export`` and registers ``leadvault webhooks …``
(``export.webhook_cli``) and ``leadvault import`` (``export.import_cli``) under the
same names as before."""

from __future__ import annotations

from pathlib import Path

import export.cli
from export import import_cli, webhook_cli
from leadvault.cli import cli

LINES_MAX = 400


def test_each_command_line_module_is_within_the_length_the_style_allows():
    for module in (export.cli, webhook_cli, import_cli):
        lines = Path(module.__file__).read_text(encoding="utf-8").count("\n")
        assert lines <= LINES_MAX, (module.__name__, lines)


def test_the_commands_keep_their_names_and_modules():
    assert cli.commands["webhooks"] is export.cli.webhooks is webhook_cli.webhooks
    assert cli.commands["export"] is export.cli.export_command
    assert cli.commands["import"] is export.cli.import_command is import_cli.import_command
    assert set(webhook_cli.webhooks.commands) == {
        "add", "list", "test", "rotate-secret", "disable", "enable", "remove", "redeliver", "log",
    }  # fmt: skip
    assert export.cli.export_command.callback.__module__ == "export.cli"
