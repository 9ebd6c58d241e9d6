"""Run the Level 2 agent on a model served through Chat Completions (vLLM, Ollama, LM Studio, gateways).

Chat Completions has no item ids, so the Agents SDK stamps every message and tool call with the same
placeholder, `__fake_id__`. ChatKit uses that id as the thread item id: each answer would overwrite the
last. And the SDK's Chat Completions converter rejects the `output_text` parts that ChatKit sends for
earlier answers, so every second turn fails. This wrapper fixes both at the model, so respond() and the
rest of Level 2 stay as they are:

    Agent(..., model=chat_completions_model(os.environ["CHAT_MODEL"]))   # in server.py
    assistant = assistant.clone(model=chat_completions_model("llama3.1"))  # or on a built agent

Not `assistant.model = ...`: an Agent built without a model took the default model's settings (GPT-5:
reasoning effort, verbosity), and assigning a model later keeps them and sends them to your server;
Agent(model=...) and clone(model=...) pick settings that fit. OPENAI_BASE_URL/KEY are read at the first call.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any
from uuid import uuid4

from agents import ModelResponse, OpenAIChatCompletionsModel
from agents.models.fake_id import FAKE_RESPONSES_ID
from agents.models.interface import Model
from openai import AsyncOpenAI


# --8<-- [start:chat-completions]
def _plain_history(items: str | list[Any]) -> str | list[Any]:
    """Earlier answers as plain text: the Chat Completions converter rejects `output_text` parts."""
    if isinstance(items, str):
        return items
    plain = []
    for item in items:
        content = item.get("content") if isinstance(item, dict) else None
        if isinstance(item, dict) and item.get("role") == "assistant" and isinstance(content, list):
            item = {**item, "content": "".join(part.get("text", "") for part in content)}
        plain.append(item)
    return plain


class ChatKitIds:
    """A fresh id per output item of one model call, in place of the SDK's shared placeholder."""

    def __init__(self) -> None:
        self.by_index: dict[int, str] = {}

    def for_index(self, index: int, kind: str) -> str:
        return self.by_index.setdefault(index, f"{'fc' if kind == 'function_call' else 'msg'}_{uuid4().hex}")

    def fix_item(self, item: Any, index: int) -> Any:
        if getattr(item, "id", None) != FAKE_RESPONSES_ID:
            return item
        return item.model_copy(update={"id": self.for_index(index, item.type)})

    def fix_event(self, event: Any) -> Any:
        updates: dict[str, Any] = {}
        index = getattr(event, "output_index", None)
        if index is not None and getattr(event, "item_id", None) == FAKE_RESPONSES_ID:
            updates["item_id"] = self.for_index(index, "message")
        if index is not None and getattr(event, "item", None) is not None:
            updates["item"] = self.fix_item(event.item, index)
        response = getattr(event, "response", None)
        if response is not None and getattr(response, "output", None):
            output = [self.fix_item(item, n) for n, item in enumerate(response.output)]
            updates["response"] = response.model_copy(update={"output": output})
        return event.model_copy(update=updates) if updates else event


class ChatKitCompatibleModel(Model):
    """Wraps a Chat Completions-backed Agents SDK model so that ChatKit gets unique ids."""

    def __init__(self, make_inner: Callable[[], Model]) -> None:
        self._make_inner = make_inner
        self._inner: Model | None = None

    @property
    def inner(self) -> Model:
        # Built at the first model call, not at import: the app starts without OPENAI_API_KEY.
        if self._inner is None:
            self._inner = self._make_inner()
        return self._inner

    async def get_response(self, system_instructions: Any, input: Any, *args: Any, **kwargs: Any) -> ModelResponse:
        response = await self.inner.get_response(system_instructions, _plain_history(input), *args, **kwargs)
        ids = ChatKitIds()
        response.output = [ids.fix_item(item, n) for n, item in enumerate(response.output)]
        return response

    async def stream_response(  # type: ignore[override]
        self, system_instructions: Any, input: Any, *args: Any, **kwargs: Any
    ) -> AsyncIterator[Any]:
        ids = ChatKitIds()
        async for event in self.inner.stream_response(system_instructions, _plain_history(input), *args, **kwargs):
            yield ids.fix_event(event)


def chat_completions_model(name: str) -> Model:
    """A model for `Agent(model=...)`; its client reads OPENAI_BASE_URL and OPENAI_API_KEY at the first call."""
    return ChatKitCompatibleModel(lambda: OpenAIChatCompletionsModel(model=name, openai_client=AsyncOpenAI()))


# --8<-- [end:chat-completions]
