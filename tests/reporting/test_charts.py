"""The dashboard's server-side SVG charts: well-formed, scaled as computed by hand, escaped."""

import xml.etree.ElementTree as ET
from decimal import Decimal

import pytest

from reporting import charts
from reporting.charts import BarRow, Series

NS = {"svg": "http://www.w3.org/2000/svg"}

# Coordinates are written with one decimal. Geometry (reporting/charts.py): the plot runs from x=64
# to x=628 and from y=28 (top) to y=186 (baseline), 158 high.


def parse(svg: str) -> ET.Element:
    root = ET.fromstring(svg)  # noqa: S314 - our own markup, parsed to prove it is well-formed
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    return root


def points(root: ET.Element) -> list[tuple[str, str, str]]:
    return [
        (circle.get("cx"), circle.get("cy"), circle.find("svg:title", NS).text)
        for circle in root.iterfind(".//svg:circle", NS)
    ]


def test_line_chart_scales_points_on_a_fixed_rate_axis():
    svg = charts.line_chart(
        title="Success rate",
        labels=["Mar 1", "Mar 2", "Mar 3"],
        series=[Series("Rate", [Decimal("1"), Decimal("0.5"), Decimal("0.25")], "series-rate")],
        fmt=lambda value: f"{int(Decimal(value) * 100)}%",
        y_max=Decimal(1),
    )
    root = parse(svg)
    assert root.find("svg:title", NS).text == "Success rate"
    # x: 64, 64 + 564/2 = 346, 628. y: 186 - v * 158 -> 28, 107, 146.5
    assert points(root) == [
        ("64.0", "28.0", "Mar 1: 100%"),
        ("346.0", "107.0", "Mar 2: 50%"),
        ("628.0", "146.5", "Mar 3: 25%"),
    ]
    assert root.find(".//svg:polyline", NS).get("points") == "64.0,28.0 346.0,107.0 628.0,146.5"
    # The area closes on the baseline under the first and last points.
    assert root.find(".//svg:polygon", NS).get("points") == "64.0,186.0 64.0,28.0 346.0,107.0 628.0,146.5 628.0,186.0"
    y_labels = [text.text for text in root.iterfind(".//svg:text[@class='y-label']", NS)]
    assert y_labels == ["0%", "25%", "50%", "75%", "100%"]
    assert [text.text for text in root.iterfind(".//svg:text[@class='x-label']", NS)] == ["Mar 1", "Mar 2", "Mar 3"]


def test_line_chart_breaks_at_days_without_a_value_and_uses_given_titles():
    svg = charts.line_chart(
        title="Rate",
        labels=["a", "b", "c", "d"],
        series=[Series("Rate", [Decimal(1), None, Decimal(0), Decimal(1)], titles=["t1", "t2", "t3", "t4"])],
        y_max=Decimal(1),
    )
    root = parse(svg)
    assert [title for _, _, title in points(root)] == ["t1", "t3", "t4"]
    polylines = [line.get("points") for line in root.iterfind(".//svg:polyline", NS)]
    # x: 64, 252, 440, 628; the first segment is the single point of day a.
    assert polylines == ["64.0,28.0", "440.0,186.0 628.0,28.0"]


def test_integer_axis_rounds_up_to_a_nice_maximum():
    svg = charts.line_chart(title="Counts", labels=["a", "b"], series=[Series("n", [30, 70])], ticks=4)
    root = parse(svg)
    # max 70 -> axis 0..100; 30 sits at 186 - 0.3 * 158 = 138.6
    assert [cy for _, cy, _ in points(root)] == ["138.6", "75.4"]
    assert [text.text for text in root.iterfind(".//svg:text[@class='y-label']", NS)] == ["0", "25", "50", "75", "100"]


@pytest.mark.parametrize(
    ("value", "expected"),
    [(0, 1), (1, 1), (7, 10), (10, 10), (11, 20), (250, 500), (1000, 1000), (1001, 2000), (123_456, 200_000)],
)
def test_nice_ceiling(value, expected):
    assert charts.nice_ceiling(value) == expected


def test_bar_chart_heights_and_slots_with_a_net_line():
    svg = charts.bar_chart(
        title="Volume",
        labels=["d1", "d2", "d3"],
        bars=Series("Gross", [100, 300, 0], "series-gross"),
        line=Series("Net", [100, 250, -50], "series-net"),
        fmt=str,
    )
    root = parse(svg)
    bars = [
        (rect.get("x"), rect.get("y"), rect.get("width"), rect.get("height"), rect.find("svg:title", NS).text)
        for rect in root.iterfind(".//svg:rect[@class='bar']", NS)
    ]
    # slot = 564 / 3 = 188, bar 131.6 wide, centred; axis 0..500: 100 -> 31.6 high, 300 -> 94.8 high
    assert bars == [
        ("92.2", "154.4", "131.6", "31.6", "d1: 100"),
        ("280.2", "91.2", "131.6", "94.8", "d2: 300"),
        ("468.2", "186.0", "131.6", "0.0", "d3: 0"),
    ]
    # The net line passes over the bar centres (158, 346, 534); a negative net sits on the axis but
    # its hover title keeps the real figure.
    assert points(root) == [("158.0", "154.4", "d1: 100"), ("346.0", "107.0", "d2: 250"), ("534.0", "186.0", "d3: -50")]


def test_horizontal_bars_are_proportional_to_the_largest():
    svg = charts.hbar_chart(title="Mix", rows=[BarRow("insufficient_funds", 10, "50.0%"), BarRow("expired_card", 5)])
    root = parse(svg)
    widths = [rect.get("width") for rect in root.iterfind(".//svg:rect[@class='bar']", NS)]
    assert widths == ["280.0", "140.0"]  # plot 640 - 200 - 160 = 280 for the largest
    labels = [text.text for text in root.iterfind(".//svg:text[@class='row-label']", NS)]
    assert labels == ["insufficient_funds", "expired_card"]
    values = [text.text for text in root.iterfind(".//svg:text[@class='row-value']", NS)]
    assert values == ["10 (50.0%)", "5"]
    assert root.get("viewBox") == "0 0 640 80"  # 28 + 2 rows x 22 + 8


@pytest.mark.parametrize(
    "svg",
    [
        charts.line_chart(title="Rate", labels=[], series=[Series("r", [])]),
        charts.line_chart(title="Rate", labels=["a", "b"], series=[Series("r", [None, None])], y_max=Decimal(1)),
        charts.bar_chart(title="Volume", labels=["a", "b"], bars=Series("g", [0, 0]), line=Series("n", [0, 0])),
        charts.hbar_chart(title="Mix", rows=[]),
    ],
)
def test_empty_series_render_a_no_data_chart(svg):
    root = parse(svg)
    assert "chart-empty" in root.get("class")
    assert root.find(".//svg:text[@class='no-data']", NS).text in {
        "No data for this period",
        "Nothing to show for this period",
    }
    assert root.find(".//svg:circle", NS) is None
    assert root.find(".//svg:rect[@class='bar']", NS) is None


def test_every_text_is_escaped():
    evil = "<script>alert(\"x\")</script> & 'quotes'"
    svg = charts.line_chart(
        title=evil,
        labels=[evil],
        series=[Series(evil, [Decimal("0.5")], css_class='x" onload="alert(1)')],
        fmt=lambda value: evil,
        y_max=Decimal(1),
    )
    assert "<script>" not in svg
    root = parse(svg)
    assert root.find("svg:title", NS).text == evil
    assert points(root)[0][2] == f"{evil}: {evil}"
    assert root.find(".//svg:text[@class='x-label']", NS).text == evil
    # The class attribute stayed one attribute: no onload was created.
    assert all("onload" not in element.attrib for element in root.iter())
    hbar = parse(charts.hbar_chart(title="Mix", rows=[BarRow(evil, 3, evil)]))
    assert hbar.find(".//svg:text[@class='row-label']", NS).text == evil
    no_data = parse(charts.line_chart(title=evil, labels=[], series=[], empty_message=evil))
    assert no_data.find(".//svg:text[@class='no-data']", NS).text == evil


def test_a_series_of_the_wrong_length_is_refused():
    with pytest.raises(ValueError, match="2 values for 3 labels"):
        charts.line_chart(title="x", labels=["a", "b", "c"], series=[Series("s", [1, 2])])
    with pytest.raises(ValueError):
        charts.bar_chart(title="x", labels=["a"], bars=Series("s", [1, 2]))


def test_many_days_get_thinned_x_labels():
    labels = [f"d{i}" for i in range(30)]
    root = parse(charts.line_chart(title="x", labels=labels, series=[Series("s", list(range(30)))]))
    shown = [text.text for text in root.iterfind(".//svg:text[@class='x-label']", NS)]
    assert shown == [f"d{i}" for i in range(0, 30, 4)]  # ceil(30 / 8) = 4
    assert len(points(root)) == 30  # every day still has its point and hover title
