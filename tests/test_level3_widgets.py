"""Every widget, icon and event the Level 3 example emits is valid for the SDK, not just accepted by it.

`WidgetTemplate.build()` returns a DynamicWidgetRoot that accepts any props, so a typo like
`"size": "3xl"` or `"name": "spinner"` would only fail in the browser. These tests validate the built
widgets against the SDK's strict component models instead.
"""

from __future__ import annotations

import itertools
import subprocess
import sys
import warnings
from typing import Any

import pytest
from chatkit.types import ProgressUpdateEvent
from chatkit.widgets import DynamicWidgetRoot
from level3 import tools
from level3.widgets.check import check_widget
from level3.widgets.forecast import Day, Forecast, forecast_card, forecast_widget
from pydantic import ValidationError


def strictly(widget_json: dict[str, Any]) -> str:
    check_widget(widget_json)
    return widget_json["type"]


@pytest.mark.parametrize(
    ("units", "subscribed", "city"),
    list(itertools.product(["C", "F"], [False, True], ["Paris", 'São "Paulo"', "</script>"])),
)
def test_widget_template_builds_strictly_valid_widgets(units: str, subscribed: bool, city: str) -> None:
    outlook = [Day(day="Tomorrow", temperature=18, conditions="cloudy"), Day(day=city, temperature=9, conditions="x")]
    forecast = Forecast(city=city, temperature=21, conditions="sunny", outlook=outlook).in_units(units)  # type: ignore[arg-type]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the supported path raises no DeprecationWarning
        widget = forecast_widget(forecast.model_copy(update={"subscribed": subscribed}))
    built = widget.model_dump(exclude_none=True)
    assert strictly(built) == "Card"
    assert city in str(built)  # tojson kept quotes and markup as data


@pytest.mark.parametrize(
    "child",
    [{"type": "Text", "value": "x", "size": "3xl"}, {"type": "Icon", "name": "spinner"}, {"type": "Image", "url": "x"}],
)
def test_strict_validation_catches_what_the_template_would_let_through(child: dict[str, Any]) -> None:
    bad = {"type": "Card", "children": [{"type": "Row", "children": [child]}]}
    assert dynamic_accepts(bad)  # the dynamic model takes it...
    with pytest.raises(ValidationError):  # ...the strict check does not
        strictly(bad)


def dynamic_accepts(widget: dict[str, Any]) -> bool:
    return DynamicWidgetRoot.model_validate(widget).type == widget["type"]


def test_typed_widget_classes_are_deprecated_but_valid() -> None:
    forecast = Forecast(city="Paris", temperature=21, conditions="sunny")
    with pytest.warns(DeprecationWarning, match="WidgetTemplate"):
        card = forecast_card(forecast, icon_url="https://example.com/sunny.png")
    assert strictly(card.model_dump(exclude_none=True)) == "Card"


def test_importing_chatkit_already_warns() -> None:
    """The warning fires when chatkit.widgets is imported (chatkit.types imports it), not only on use."""
    probe = [sys.executable, "-W", "error::DeprecationWarning", "-c", "import chatkit.server"]
    out = subprocess.run(probe, capture_output=True, text=True)
    assert out.returncode != 0 and "Direct usage of named widget classes" in out.stderr
    ignored = [sys.executable, "-W", "ignore:Direct usage of named widget classes:DeprecationWarning"]
    assert subprocess.run([*ignored, *probe[3:]], capture_output=True).returncode == 0


def test_progress_icons_are_valid() -> None:
    source = open(tools.__file__).read()
    icons = [line.split('icon="')[1].split('"')[0] for line in source.splitlines() if 'icon="' in line]
    assert icons == ["search", "check-circle"]
    for icon in icons:
        ProgressUpdateEvent(icon=icon, text="x")  # validates against chatkit.icons.IconName
    with pytest.raises(ValidationError):
        ProgressUpdateEvent(icon="spinner", text="x")


def test_unit_conversion_round_trips() -> None:
    forecast = Forecast(
        city="Oslo", temperature=20, conditions="windy", outlook=[Day(day="d", temperature=0, conditions="x")]
    )
    fahrenheit = forecast.in_units("F")
    assert (fahrenheit.temperature, fahrenheit.outlook[0].temperature) == (68, 32)
    assert fahrenheit.in_units("C") == forecast


def test_the_outlook_loop_renders_one_row_per_day() -> None:
    forecast = tools.lookup_forecast("Paris")
    rows = [c for c in forecast_widget(forecast).model_dump(exclude_none=True)["children"] if c["type"] == "Row"]
    assert [row["children"][0]["value"] for row in rows[1:-1]] == ["Tomorrow", "In 2 days", "In 3 days"]
