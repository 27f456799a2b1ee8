"""admin.charts: the SVG is well-formed, labelled, escaped, CSP-safe and legible."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import pytest
from markupsafe import Markup

from admin import charts

SVG = "{http://www.w3.org/2000/svg}"
HOSTILE = '<script>alert(1)</script>"&'


def parse(markup: str) -> ET.Element:
    return ET.fromstring(str(markup))


def contrast_on_white(hex_colour: str) -> float:
    def channel(c: float) -> float:
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (int(hex_colour[i : i + 2], 16) / 255 for i in (1, 3, 5))
    lum = 0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b)
    return 1.05 / (lum + 0.05)


def assert_labelled(root: ET.Element, title: str, desc: str) -> None:
    assert root.get("role") == "img"
    title_el, desc_el = root.find(f"{SVG}title"), root.find(f"{SVG}desc")
    assert title_el is not None and title_el.text == title
    assert desc_el is not None and desc_el.text == desc
    assert root.get("aria-labelledby") == f"{title_el.get('id')} {desc_el.get('id')}"


def test_line_chart_is_labelled_and_draws_one_line_per_series():
    svg = charts.line_chart(
        "perday",
        "Leads per day",
        "12 leads in 3 days",
        ["1 Mar", "2 Mar", "3 Mar"],
        [charts.Series("Footer", [1, 2, 3]), charts.Series("Sidebar", [0, 6, 0])],
    )
    assert isinstance(svg, Markup)
    root = parse(svg)
    assert_labelled(root, "Leads per day", "12 leads in 3 days")
    lines = root.findall(f"{SVG}polyline")
    assert [line.find(f"{SVG}title").text for line in lines] == ["Footer", "Sidebar"]
    assert lines[0].get("stroke") != lines[1].get("stroke")
    assert lines[0].get("stroke-dasharray") != lines[1].get("stroke-dasharray")
    # The axis goes 0, 2, 4, 6 for a maximum of 6: whole numbers for counts.
    labels = [t.text for t in root.iter(f"{SVG}text")]
    assert [v for v in labels if v.isdigit()] == ["0", "2", "4", "6"]
    # The highest point (6 of 6) sits at the top of the plot, 2 of 6 a third up.
    ys = [float(p.split(",")[1]) for p in lines[1].get("points").split()]
    plot_h = charts.HEIGHT - charts.TOP - charts.BOTTOM
    assert ys[1] == pytest.approx(charts.TOP, abs=0.1)
    ys0 = [float(p.split(",")[1]) for p in lines[0].get("points").split()]
    assert ys0[1] == pytest.approx(charts.TOP + plot_h * 2 / 3, abs=0.1)


def test_long_series_show_a_few_x_labels_only():
    labels = [f"d{i}" for i in range(90)]
    root = parse(charts.line_chart("c", "t", "d", labels, [charts.Series("a", [0] * 90)]))
    shown = [t.text for t in root.iter(f"{SVG}text") if t.text and t.text.startswith("d")]
    assert 5 <= len(shown) <= 9
    assert shown[0] == "d0" and shown[-1] == "d89"
    assert root.find(f"{SVG}circle") is None  # no markers on 90 points


def test_stacked_bars_stack_and_skip_zeros():
    root = parse(
        charts.stacked_bar_chart(
            "bots",
            "Bots",
            "desc",
            ["Mon", "Tue"],
            [charts.Series("dropped", [3, 0]), charts.Series("accepted", [1, 0])],
        )
    )
    rects = root.findall(f"{SVG}rect")
    assert len(rects) == 2  # Tuesday has nothing to draw
    lower, upper = rects
    assert float(upper.get("y")) + float(upper.get("height")) == pytest.approx(
        float(lower.get("y"))
    )
    assert "Mon: dropped 3" in lower.find(f"{SVG}title").text


def test_funnel_bars_link_and_scale():
    root = parse(
        charts.funnel_chart(
            "funnel",
            "Funnel",
            "desc",
            [
                charts.Bar("New", 100, "100", "/console/leads?stage=new"),
                charts.Bar("MQL", 25, "25 (25 %)", "/console/leads?stage=mql"),
                charts.Bar("Won", 0, "0"),
            ],
        )
    )
    assert root.get("role") == "group"  # links may not sit inside role=img
    links = root.findall(f"{SVG}a")
    assert [a.get("href") for a in links] == [
        "/console/leads?stage=new",
        "/console/leads?stage=mql",
    ]
    widths = [float(r.get("width")) for r in root.iter(f"{SVG}rect")]
    assert widths[1] == pytest.approx(widths[0] / 4)
    assert widths[2] == 0


def test_text_is_escaped_everywhere():
    out = str(
        charts.line_chart(HOSTILE, HOSTILE, HOSTILE, [HOSTILE], [charts.Series(HOSTILE, [1])])
    )
    out += str(
        charts.funnel_chart("f", HOSTILE, HOSTILE, [charts.Bar(HOSTILE, 1, HOSTILE, HOSTILE)])
    )
    out += str(charts.stacked_bar_chart("b", "t", "d", [HOSTILE], [charts.Series(HOSTILE, [1])]))
    out += str(charts.data_table(HOSTILE, [HOSTILE], [[HOSTILE, HOSTILE]]))
    out += str(charts.legend([HOSTILE]))
    assert "<script" not in out
    assert "&lt;script&gt;" in out


def test_no_inline_styles_or_scripts_so_a_strict_csp_allows_them():
    out = str(charts.line_chart("c", "t", "d", ["a", "b"], [charts.Series("s", [1, 2])])) + str(
        charts.funnel_chart("f", "t", "d", [charts.Bar("a", 1, "1")])
    )
    assert "style" not in out
    assert not re.search(r"\son[a-z]+=", out)
    assert "<script" not in out


def test_palette_reaches_3_to_1_on_white_and_is_distinct():
    colours = [c for c, _ in charts.PALETTE]
    assert len(set(colours)) == len(colours)
    assert len({d for _, d in charts.PALETTE}) == len(charts.PALETTE)
    for colour in [*colours, charts.TEXT]:
        assert contrast_on_white(colour) >= 3.0, colour
    assert contrast_on_white(charts.TEXT) >= 4.5


def test_data_table_has_headers_caption_and_keeps_caller_markup():
    table = parse(
        charts.data_table(
            "Leads per day",
            ["Day", "Footer"],
            [["1 Mar", Markup('<a href="/console/leads?day=1">4</a>')]],
        )
    )
    assert table.find("caption").text == "Leads per day"
    assert [th.get("scope") for th in table.iter("th")] == ["col", "col", "row"]
    assert table.find(".//td/a").get("href") == "/console/leads?day=1"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (0, (4, 1)),
        (1, (1, 1)),
        (3, (3, 1)),
        (6, (6, 2)),
        (11, (15, 5)),
        (240, (300, 100)),
        (1001, (1500, 500)),
        (0.4, (1, 1)),
    ],
)
def test_nice_scale(value, expected):
    assert charts.nice_scale(value) == expected


def test_funnel_labels_start_inside_the_picture():
    # A fixed label column cut the German "Gewonnen" at the left edge: the labels'
    # right end moves with the longest one (bold 12-unit text, ~8 units a character).
    root = parse(
        charts.funnel_chart(
            "f", "t", "d", [charts.Bar("Neu", 4, "4"), charts.Bar("Gewonnen", 1, "1")]
        )
    )
    labels = [t for t in root.iter(f"{SVG}text") if t.get("text-anchor") == "end"]
    assert {t.text for t in labels} == {"Neu", "Gewonnen"}
    for label in labels:
        assert float(label.get("x")) >= 8 * len("Gewonnen")
    bars = list(root.iter(f"{SVG}rect"))
    assert all(float(r.get("x")) > float(labels[0].get("x")) for r in bars)
