"""Check a built widget against the SDK's own component models, node by node.

`WidgetTemplate.build()` returns a DynamicWidgetRoot, which accepts any props: `"size": "3xl"` on a
Text or an Icon named "spinner" builds fine and fails only in the browser. Run this over every widget
your templates can produce (in tests, or once at startup) to catch that on the server.
"""

from __future__ import annotations

import warnings
from typing import Annotated, Any, get_args, get_origin

from chatkit.widgets import StrictWidgetComponent, StrictWidgetRoot
from pydantic import BaseModel


# --8<-- [start:check-widget]
def _models(union: object) -> dict[str, type[BaseModel]]:
    while get_origin(union) is Annotated:
        union = get_args(union)[0]
    return {get_args(model.model_fields["type"].annotation)[0]: model for model in get_args(union)}


COMPONENTS = _models(StrictWidgetComponent) | _models(StrictWidgetRoot)


def check_widget(node: dict[str, Any]) -> None:
    """Raise pydantic.ValidationError (or ValueError) at the first invalid component or prop.

    Validating the root alone is not enough: a strict parent accepts any child as a dynamic one.
    """
    model = COMPONENTS.get(node.get("type", ""))
    if model is None:
        raise ValueError(f"unknown widget component {node.get('type')!r}")
    with warnings.catch_warnings():  # the typed classes warn on use; here they are only a schema
        warnings.simplefilter("ignore", DeprecationWarning)
        model.model_validate({**node, "children": []} if "children" in node else node)
    children = node.get("children") or []
    for child in children if isinstance(children, list) else [children]:
        check_widget(child)


# --8<-- [end:check-widget]
