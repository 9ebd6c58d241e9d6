"""The offline model server, through the real openai client: the wire path every example uses."""

from __future__ import annotations

import os

import httpx
import pytest
from openai import AsyncOpenAI
from scripted_model_server import ScriptedModel, function_call_output, text_output


@pytest.fixture
def openai_client() -> AsyncOpenAI:
    return AsyncOpenAI(base_url=os.environ["OPENAI_BASE_URL"], api_key="offline")


async def test_default_reply_streams_word_deltas(model: ScriptedModel, openai_client: AsyncOpenAI) -> None:
    stream = await openai_client.responses.create(model="m", input="hello there world", stream=True)
    events = [event async for event in stream]
    deltas = [e.delta for e in events if e.type == "response.output_text.delta"]
    assert deltas == ["You", " said:", " hello", " there", " world"]
    assert events[0].type == "response.created"
    completed = events[-1]
    assert completed.type == "response.completed"
    assert completed.response.output[0].content[0].text == "You said: hello there world"
    assert model.requests[0]["input"] == "hello there world"


async def test_scripted_turns_then_default(model: ScriptedModel, openai_client: AsyncOpenAI) -> None:
    model.script([function_call_output("lookup", {"q": "x"})], [text_output("done")])
    first = await openai_client.responses.create(model="m", input="a")
    assert first.output[0].type == "function_call" and first.output[0].name == "lookup"
    second = await openai_client.responses.create(model="m", input="b")
    assert second.output_text == "done"
    third = await openai_client.responses.create(model="m", input="c")
    assert third.output_text == "You said: c"


async def test_message_ids_are_unique(model: ScriptedModel, openai_client: AsyncOpenAI) -> None:
    ids = {(await openai_client.responses.create(model="m", input="same")).output[0].id for _ in range(5)}
    assert len(ids) == 5


async def test_slash_call_uses_an_offered_tool(model: ScriptedModel, openai_client: AsyncOpenAI) -> None:
    tool = {"type": "function", "name": "get_weather", "parameters": {"type": "object", "properties": {}}}
    out = await openai_client.responses.create(model="m", input='/call get_weather {"city": "Oslo"}', tools=[tool])
    assert out.output[0].type == "function_call"
    assert out.output[0].arguments == '{"city": "Oslo"}'
    plain = await openai_client.responses.create(model="m", input="/call not_offered {}")
    assert plain.output_text.startswith("You said:")
    # Found by tests/test_fuzz.py: arguments that are not a JSON object were a 500 from the model server.
    for text in ('/call get_weather {"city": "Oslo"} and more', "/call get_weather [1]", "/call get_weather {"):
        answer = await openai_client.responses.create(model="m", input=text, tools=[tool])
        assert answer.output_text == f"You said: {text}"


async def test_control_endpoints(model: ScriptedModel) -> None:
    base = os.environ["OPENAI_BASE_URL"].removesuffix("/v1")
    async with httpx.AsyncClient(base_url=base) as http:
        queued = await http.post("/_scripted/turns", json={"turns": [[{"text": "scripted"}]]})
        assert queued.json() == {"queued": 1}
        bad = await http.post("/_scripted/turns", json={"turns": [[{"nope": 1}]]})
        assert bad.status_code == 400
        out = await AsyncOpenAI(base_url=f"{base}/v1", api_key="x").responses.create(model="m", input="q")
        assert out.output_text == "scripted"
        assert (await http.get("/_scripted/requests")).json()[0]["input"] == "q"
        await http.post("/_scripted/reset")
        assert (await http.get("/_scripted/requests")).json() == []


async def test_scripted_failure_is_an_http_error(model: ScriptedModel, openai_client: AsyncOpenAI) -> None:
    model.fail_next(400)
    with pytest.raises(Exception, match="scripted failure"):
        await openai_client.responses.create(model="m", input="x")


async def test_chat_completions_stream_and_tool_calls(model: ScriptedModel, openai_client: AsyncOpenAI) -> None:
    stream = await openai_client.chat.completions.create(
        model="m", messages=[{"role": "user", "content": "hi there"}], stream=True
    )
    chunks = [chunk async for chunk in stream]
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "You said: hi there"
    assert chunks[-1].choices[0].finish_reason == "stop"

    model.script([function_call_output("lookup", {"q": "x"})])
    tool = {"type": "function", "function": {"name": "lookup", "parameters": {"type": "object", "properties": {}}}}
    done = await openai_client.chat.completions.create(
        model="m", messages=[{"role": "user", "content": "a"}], tools=[tool]
    )
    call = done.choices[0].message.tool_calls[0]
    assert (call.function.name, call.function.arguments, done.choices[0].finish_reason) == (
        "lookup",
        '{"q": "x"}',
        "tool_calls",
    )
    messages = [{"role": "tool", "tool_call_id": call.id, "content": "42"}]
    after = await openai_client.chat.completions.create(model="m", messages=messages)
    assert after.choices[0].message.content == "Tool result: 42"


async def test_chat_completions_hold_like_responses(model: ScriptedModel, openai_client: AsyncOpenAI) -> None:
    gate = model.hold_next(after_events=2)  # chunk 0 (the role) and chunk 1 (the first word) go out first
    messages = [{"role": "user", "content": "a b"}]
    stream = await openai_client.chat.completions.create(model="m", messages=messages, stream=True)  # type: ignore[arg-type]
    chunks = aiter(stream)
    await anext(chunks)
    first_word = await anext(chunks)
    assert not gate.is_set(), "the first word arrived only after the answer was released"
    assert first_word.choices[0].delta.content == "You"
    gate.set()
    rest = [c.choices[0].delta.content or "" async for c in chunks]
    assert "".join(rest) == " said: a b"
