"""The Level 3 agent and its tools: progress events, a widget, and a tool that runs in the browser."""

from __future__ import annotations

import hashlib
import logging
from datetime import datetime

from agents import Agent, ModelSettings, RunContextWrapper, StopAtTools, function_tool
from agents.models import get_default_model
from chatkit.agents import AgentContext, ClientToolCall
from chatkit.errors import CustomStreamError
from chatkit.types import (
    ProgressUpdateEvent,
    StructuredInputItem,
    StructuredInputMultipleChoice,
    StructuredInputMultipleChoiceOption,
    ThreadItemDoneEvent,
)

from .context import RequestContext
from .widgets.forecast import Day, Forecast, forecast_widget

logger = logging.getLogger(__name__)

ToolContext = RunContextWrapper[AgentContext[RequestContext]]

_CONDITIONS = ("sunny", "cloudy", "light rain", "windy", "snow showers")


def lookup_forecast(city: str) -> Forecast:
    """A stand-in for a weather API: deterministic per city, so the demo and tests are stable."""
    digest = int(hashlib.sha256(city.strip().lower().encode()).hexdigest(), 16)
    outlook = [
        Day(day=label, temperature=(digest >> (8 * n)) % 35 - 5, conditions=_CONDITIONS[(digest >> (8 * n)) % 5])
        for n, label in enumerate(("Tomorrow", "In 2 days", "In 3 days"), start=1)
    ]
    return Forecast(
        city=city.strip().title(), temperature=digest % 35 - 5, conditions=_CONDITIONS[digest % 5], outlook=outlook
    )


# --8<-- [start:tool-failure]
def end_the_turn(ctx: RunContextWrapper[object], error: Exception) -> str:
    """A tool that raises ends the turn with a message the user can act on; the log keeps the trace.

    The Agents SDK's default instead tells the model "An error occurred while running the tool" and lets
    it go on: a model that did not get the facts it asked for may answer anyway, from memory.
    """
    logger.error("tool %s failed", getattr(ctx, "tool_name", "?"), exc_info=error)
    raise CustomStreamError("The weather service did not answer. Please try again.", allow_retry=True) from error


# --8<-- [end:tool-failure]


# --8<-- [start:tool-progress]
@function_tool(failure_error_function=end_the_turn)
async def get_weather(ctx: ToolContext, city: str) -> str:
    """Get the current weather for a city.

    Args:
        city: The city name, for example "Paris".
    """
    # Progress events are ephemeral (never stored) and reach the client only because
    # respond() consumes the run through stream_agent_response().
    await ctx.context.stream(ProgressUpdateEvent(icon="search", text=f"Looking up {city}…"))
    forecast = lookup_forecast(city)
    await ctx.context.stream(ProgressUpdateEvent(icon="check-circle", text="Forecast received"))
    logger.info("weather lookup city=%s user=%s", forecast.city, ctx.context.request_context.user_id)
    return f"{forecast.temperature}°{forecast.units} and {forecast.conditions} in {forecast.city}"


# --8<-- [end:tool-progress]


# --8<-- [start:tool-widget]
@function_tool(failure_error_function=end_the_turn)
async def show_forecast(ctx: ToolContext, city: str) -> str:
    """Show the user a forecast card for a city, with buttons to subscribe and to switch units.

    Args:
        city: The city name.
    """
    forecast = lookup_forecast(city)
    # Stored as a WidgetItem (thread.item.done); copy_text is what the client copies.
    await ctx.context.stream_widget(forecast_widget(forecast), copy_text=f"{forecast.city}: {forecast.conditions}")
    return "The forecast card is on screen; do not repeat its numbers."


# --8<-- [end:tool-widget]


# --8<-- [start:tool-client]
@function_tool
async def get_user_location(ctx: ToolContext) -> None:
    """Ask the user's browser for the city the user is in."""
    # Runs in the browser: the turn stops here (StopAtTools) with a pending client_tool_call item;
    # the client answers with threads.add_client_tool_output and respond() runs again.
    ctx.context.client_tool_call = ClientToolCall(name="get_user_location", arguments={"precision": "city"})


# --8<-- [end:tool-client]


# --8<-- [start:tool-structured-input]
@function_tool
async def ask_user(ctx: ToolContext, question: str, options: list[str]) -> str:
    """Ask the user to pick one answer, when the request is ambiguous (which city, which units).

    Args:
        question: The question, in one short sentence.
        options: Two to five short answers to pick from.
    """
    # A structured_input item: the client shows the choices and answers with
    # threads.add_structured_input; the SDK marks the item answered and respond() runs again.
    item = StructuredInputItem(
        id=ctx.context.generate_id("message"),
        thread_id=ctx.context.thread.id,
        created_at=datetime.now(),
        inputs=[
            StructuredInputMultipleChoice(
                id="choice",
                question=question[:200],
                options=[StructuredInputMultipleChoiceOption(value=option[:100]) for option in options[:5]],
            )
        ],
    )
    await ctx.context.stream(ThreadItemDoneEvent(item=item))
    return "The question is on screen; wait for the answer."


# --8<-- [end:tool-structured-input]


# --8<-- [start:agent]
def build_agent(model_timeout: float = 120.0) -> Agent[AgentContext[RequestContext]]:
    return Agent[AgentContext[RequestContext]](
        name="Weather assistant",
        instructions=(
            "You help with the weather. Use get_weather for facts, show_forecast when the user wants "
            "to see a forecast, get_user_location when you need to know where the user is, and ask_user "
            "when the request is ambiguous."
        ),
        model=get_default_model(),  # OPENAI_DEFAULT_MODEL, read when the app starts
        tools=[get_weather, show_forecast, get_user_location, ask_user],
        # A client tool and a question must end the run: the browser, not the server, answers them.
        tool_use_behavior=StopAtTools(stop_at_tool_names=[get_user_location.name, ask_user.name]),
        # The openai client waits up to 600 s for a model that has gone silent, then retries twice:
        # bound the wait between two streamed events (the turn then ends with an `error` event).
        model_settings=ModelSettings(extra_args={"timeout": model_timeout}),
    )


# --8<-- [end:agent]
