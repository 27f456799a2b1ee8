"""The default language is spelled once, ``i18n.DEFAULT_LANGUAGE``: scoring's defaults
(a new salesperson's language, the API's, the fallback of the handoff mail and of a
rule's title) read it rather than spelling "en" again, so changing it is one change."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

from leadvault import i18n
from scoring import routing, sales_team, schemas
from scoring.models import Salesperson

SCORING = Path(routing.__file__).parent


def test_scoring_spells_no_language_code():
    found = [
        f"{path.name}:{node.lineno}"
        for path in sorted(SCORING.glob("*.py"))
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.Constant) and node.value in i18n.LANGUAGES
    ]
    assert found == []


def test_the_defaults_are_the_default_language():
    for add in (routing.add_person, sales_team.add_person):
        assert inspect.signature(add).parameters["language"].default == i18n.DEFAULT_LANGUAGE
    assert Salesperson.__table__.c.language.default.arg == i18n.DEFAULT_LANGUAGE
    field = schemas.SalespersonInSchema().fields["language"]
    assert field.load_default == i18n.DEFAULT_LANGUAGE
