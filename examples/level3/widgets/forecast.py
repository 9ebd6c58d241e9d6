"""The forecast widget: built from forecast.widget (the supported path) or from typed classes."""

from __future__ import annotations

from typing import Literal

from chatkit.widgets import Card, DynamicWidgetRoot, Image, Text, WidgetTemplate
from pydantic import BaseModel

Units = Literal["C", "F"]


class Day(BaseModel):
    day: str
    temperature: int
    conditions: str


class Forecast(BaseModel):
    """What the widget shows; also the template's data."""

    city: str
    temperature: int
    units: Units = "C"
    conditions: str
    subscribed: bool = False
    outlook: list[Day] = []  # the template loops over it

    def in_units(self, units: Units) -> Forecast:
        if units == self.units:
            return self

        def convert(degrees: int) -> int:
            return round(degrees * 9 / 5 + 32 if units == "F" else (degrees - 32) * 5 / 9)

        days = [day.model_copy(update={"temperature": convert(day.temperature)}) for day in self.outlook]
        return self.model_copy(update={"temperature": convert(self.temperature), "units": units, "outlook": days})


# --8<-- [start:widget-template]
# A .widget file (JSON with a Jinja template, made at widgets.chatkit.studio) is the supported way
# since chatkit 1.4. A relative path resolves against THIS file, not the working directory.
FORECAST_TEMPLATE = WidgetTemplate.from_file("forecast.widget")


def forecast_widget(forecast: Forecast) -> DynamicWidgetRoot:
    return FORECAST_TEMPLATE.build(forecast)


# --8<-- [end:widget-template]


# --8<-- [start:widget-classes]
def forecast_card(forecast: Forecast, icon_url: str) -> Card:
    """The same idea with typed classes: checked by pydantic, but deprecated (DeprecationWarning)."""
    return Card(
        size="sm",
        children=[
            Image(src=icon_url, alt=forecast.conditions, size=48),  # Image takes src, not url
            Text(value=f"{forecast.city}: {forecast.temperature}°{forecast.units}", size="lg", weight="semibold"),
            Text(value=forecast.conditions, color="secondary"),
        ],
    )


# --8<-- [end:widget-classes]
