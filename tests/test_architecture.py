"""The dependency rule of docs/ARCHITECTURE.md, checked by import-linter."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

from leadvault import catalogues

ROOT = Path(__file__).resolve().parent.parent
CONFIG = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]


def lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    """import-linter over the packages in ``root`` (a fresh process: its own sys.path)."""
    return subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from importlinter.cli import lint_imports; "
            "sys.exit(lint_imports(config_filename='pyproject.toml', no_cache=True, no_logo=True))",
        ],
        cwd=root,
        env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_imports_follow_the_layers():
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "BROKEN" not in result.stdout


def test_every_package_is_under_contract():
    """A new top-level package (export, nurture, admin …) must join root_packages."""
    packages = {path.name for path in catalogues.packages(ROOT)}
    assert packages == set(CONFIG["root_packages"])


def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return '"' + str(value) + '"'


def _config_text() -> str:
    lines = ["[tool.importlinter]"]
    lines += [f"{k} = {_toml_value(v)}" for k, v in CONFIG.items() if k != "contracts"]
    for contract in CONFIG["contracts"]:
        lines += ["", "[[tool.importlinter.contracts]]"]
        lines += [f"{k} = {_toml_value(v)}" for k, v in contract.items()]
    return "\n".join(lines) + "\n"


def _tree(tmp_path: Path, bad: dict[str, str]) -> Path:
    (tmp_path / "pyproject.toml").write_text(_config_text())
    modules = {"views.py", "app.py", "cli.py", "wiring.py", "service.py"}
    for package in CONFIG["root_packages"]:
        folder = tmp_path / package
        folder.mkdir()
        (folder / "__init__.py").write_text("")
        for module in modules:
            (folder / module).write_text("")
    # The registrations the contract allows (and insists on finding).
    for contract in CONFIG["contracts"]:
        for ignored in contract.get("ignore_imports", []):
            importer, imported = (part.strip() for part in ignored.split("->"))
            path = tmp_path / (importer.replace(".", "/") + ".py")
            path.write_text(path.read_text() + f"import {imported}\n")
            # A registered module beyond the usual ones (scoring.sales_cli) exists too.
            target = tmp_path / (imported.replace(".", "/") + ".py")
            if "." in imported and not target.exists():
                target.write_text("")
    for module, source in bad.items():
        path = tmp_path / module
        path.write_text(path.read_text() + textwrap.dedent(source))
    return tmp_path


def test_the_stand_in_tree_keeps_the_contract(tmp_path):
    result = lint_imports(_tree(tmp_path, {}))
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_lower_package_importing_a_higher_one_fails(tmp_path):
    root = _tree(tmp_path, {"consent/service.py": "from capture import service\n"})
    result = lint_imports(root)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "consent.service -> capture.service" in result.stdout


def test_siblings_and_the_core_are_held_too(tmp_path):
    root = _tree(
        tmp_path,
        {
            "widgets/service.py": "import scoring.service\n",  # siblings stay apart
            "leadvault/cli.py": "import scoring.service\n",  # only the registrations are allowed
            "capture/views.py": "from consent.views import helper\n",  # another's views
        },
    )
    result = lint_imports(root)
    assert result.returncode == 1, result.stdout + result.stderr
    for found in (
        "widgets.service -> scoring.service",
        "leadvault.cli -> scoring.service",
        "capture.views -> consent.views",
    ):
        assert found in result.stdout, result.stdout
