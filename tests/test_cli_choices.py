"""Lead filters on the command line take only real codes: a stage, grade or purpose that
does not exist (a typo, ``MQL`` for ``mql``) is refused naming the valid ones (exit 2),
instead of selecting nothing and reading as "no such leads"; scores must be finite."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from leadvault.cli import cli
from tests import factories


def _run(app, *args):
    return CliRunner().invoke(cli, list(args), obj=app)


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (("leads", "list", "--stage", "MQL"), "'MQL' is not one of: new, mql, sal, sql, won, lost"),
        (("leads", "list", "--stage", "new", "--stage", "bogus"), "'bogus' is not one of:"),
        (("leads", "list", "--reached", "bogus"), "'bogus' is not one of: new, mql"),
        (("leads", "list", "--grade", "Z"), "'Z' is not one of: A, B, C, D"),
        (("leads", "list", "--purpose", "bogus"), "'bogus' is not one of:"),
        (("export", "--stage", "bogus"), "'bogus' is not one of: new, mql"),
        (("export", "--grade", "a"), "'a' is not one of: A, B, C, D"),
        (("export", "--purpose", "bogus"), "'bogus' is not one of:"),
    ],
)
def test_unknown_codes_are_refused_naming_the_valid_ones(app, args, named):
    result = _run(app, *args)
    assert result.exit_code == 2, result.output
    assert named in result.output
    option = [a for a in args if a.startswith("--")][-1]
    assert f"Invalid value for '{option}'" in result.output


@pytest.mark.parametrize("purpose_of", ["leads", "export"])
def test_a_purpose_refusal_names_the_instances_purposes(app, purpose_of):
    args = ["leads", "list"] if purpose_of == "leads" else ["export"]
    result = _run(app, *args, "--purpose", "newsleter")
    assert result.exit_code == 2, result.output
    assert "newsletter" in result.output and "sales_contact" in result.output


def test_real_codes_still_select(app, tmp_path):
    lead = factories.lead(app, purposes=("newsletter",))
    listed = _run(app, "leads", "list", "--stage", "new", "--grade", "C", "--purpose", "newsletter")
    assert listed.exit_code == 0, listed.output
    assert str(lead) in listed.output
    out = tmp_path / "leads.csv"
    exported = _run(
        app, "export", "--stage", "new", "--grade", "C", "--purpose", "newsletter", "-o", str(out)
    )
    assert exported.exit_code == 0, exported.output
    assert len(out.read_text(encoding="utf-8").splitlines()) == 2  # the heading and the lead


@pytest.mark.parametrize("number", ["nan", "NaN", "inf", "-inf", "1e999", "ten"])
@pytest.mark.parametrize("option", ["--score-min", "--score-max"])
def test_scores_must_be_finite_numbers(app, option, number):
    result = _run(app, "leads", "list", option, number)
    assert result.exit_code == 2, result.output
    assert f"Invalid value for '{option}'" in result.output and repr(number) in result.output
    assert _run(app, "leads", "list", option, "-2.5").exit_code == 0
