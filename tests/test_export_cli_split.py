"""The export package's command line is cut by role: ``export.cli`` holds ``leadvault
export`` and registers ``leadvault webhooks …`` (``export.webhook_cli``) and ``leadvault
import`` (``export.import_cli``) under the same names as before."""

from __future__ import annotations

import export.cli
from export import import_cli, webhook_cli
from leadvault.cli import cli


def test_the_commands_keep_their_names_and_modules():
    assert cli.commands["webhooks"] is export.cli.webhooks is webhook_cli.webhooks
    assert cli.commands["export"] is export.cli.export_command
    assert cli.commands["import"] is export.cli.import_command is import_cli.import_command
    assert set(webhook_cli.webhooks.commands) == {
        "add", "list", "test", "rotate-secret", "disable", "enable", "remove", "redeliver", "log",
    }  # fmt: skip
    assert export.cli.export_command.callback.__module__ == "export.cli"
