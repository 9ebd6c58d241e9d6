"""Hypothesis strategies for ChatKit request bodies, built from the chatkit request models themselves.

`valid_requests(ids)` walks the pydantic fields of every member of `chatkit.types.ChatKitReq` and draws a
body for one of the 16 types; string fields that name a thread, item, attachment or cursor mostly draw
from `ids`, a live pool of real ids (both users', so foreign ids are tried all the time).
`request_bodies(ids)` adds mutations: wrong types, missing and extra fields, unicode edge cases, extreme
integers, 1 MB strings, deep nesting, and bodies that are not JSON at all.
"""

from __future__ import annotations

import json
import types
import typing
from collections.abc import Callable
from typing import Annotated, Any, Literal

from chatkit.types import ChatKitReq
from hypothesis import strategies as st
from pydantic import BaseModel

# Characters that have broken servers: NUL, lone surrogates, RTL and bidi controls, combining marks,
# zero-width joiners, emoji (astral: a surrogate pair in JSON), a BOM, line separators.
EDGE_CHARACTERS = [
    "\x00", "\ud800", "\udfff", "\u202e", "\u200f", "\u05d0", "\u0645", "\u0301", "\u0336", "\u200d",
    "\U0001f600", "\U0001f4bb", "\ufeff", "\u2028", "\ufffd", "\x7f", "\n", "\"", "\\", "%",
]  # fmt: skip
EXTREME_INTEGERS = [0, -1, 1, 2**31, -(2**31) - 1, 2**63 - 1, 2**63, -(2**63), 10**12, -(10**12), 10**40]
# What the Level 3 agent does when a user message asks: drive the server into its other states.
SCENARIOS = [
    "/call get_weather {\"city\": \"Paris\"}",
    "/call show_forecast {\"city\": \"Oslo\"}",
    "/call get_user_location {}",
    "/call ask_user {\"question\": \"Which?\", \"options\": [\"a\", \"b\"]}",
]  # fmt: skip
ID_FIELDS = {"thread_id", "item_id", "attachment_id", "after"}
ACTION_TYPES = ["forecast.subscribe", "forecast.units"]  # the ones Level 3 handles

Ids = Callable[[bool], list[str]]  # the live id pools, read at draw time: thread ids (True) or the others

plain_text = st.text(st.characters(exclude_characters="\x00"), max_size=20)
text = st.one_of(
    plain_text,
    plain_text,
    plain_text,
    st.sampled_from(SCENARIOS),
    st.lists(st.one_of(plain_text, st.sampled_from(EDGE_CHARACTERS)), min_size=1, max_size=6).map("".join),
)
integers = st.one_of(st.integers(-1000, 1000), st.sampled_from(EXTREME_INTEGERS), st.integers())
json_leaves = st.one_of(st.none(), st.booleans(), integers, st.floats(allow_nan=False, allow_infinity=False), text)
json_values = st.recursive(
    json_leaves,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(text, inner, max_size=4)),
    max_leaves=12,
)


def _pick(ids: Ids, threads: bool, n: int) -> str:
    pool = ids(threads) or ids(not threads) or ["thr_none"]
    return pool[n % len(pool)]


def an_id(ids: Ids, name: str) -> st.SearchStrategy[str]:
    """Mostly a real id from the pool (anyone's, of the right kind), sometimes one that never existed."""
    pooled = st.integers(0, 2**16).map(lambda n: _pick(ids, name == "thread_id", n))
    anything = st.integers(0, 2**16).map(lambda n: _pick(ids, n % 2 == 0, n // 2))
    return st.one_of(pooled, pooled, pooled, anything, text)


def strategy_for(annotation: Any, name: str, ids: Ids) -> st.SearchStrategy[Any]:
    """A valid JSON value for a field of a chatkit request model."""
    if name in ID_FIELDS:
        return an_id(ids, name) if annotation is str else st.one_of(st.none(), an_id(ids, name))
    if name == "item_ids":
        return st.lists(an_id(ids, name), max_size=3)
    if name == "limit":
        return st.one_of(st.none(), integers)
    if name == "attachments":
        return st.one_of(st.just([]), st.just([]), st.lists(an_id(ids, name), max_size=2))
    origin = typing.get_origin(annotation)
    if origin is Annotated:
        return strategy_for(typing.get_args(annotation)[0], name, ids)
    if origin is Literal:
        return st.sampled_from(typing.get_args(annotation))
    if origin in (typing.Union, types.UnionType):
        return st.one_of([strategy_for(arg, name, ids) for arg in typing.get_args(annotation)])
    if origin is list:
        return st.lists(strategy_for(typing.get_args(annotation)[0], name, ids), max_size=3)
    if origin is dict:
        return st.dictionaries(text, strategy_for(typing.get_args(annotation)[1], name, ids), max_size=3)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return model_strategy(annotation, ids)
    scalars = {str: text, int: integers, bool: st.booleans(), float: st.floats(allow_nan=False), type(None): st.none()}
    return scalars.get(annotation, json_values)


def model_strategy(model: type[BaseModel], ids: Ids) -> st.SearchStrategy[dict[str, Any]]:
    """Required fields always, optional ones sometimes; field types from the model's own annotations."""
    required, optional = {}, {}
    hints = typing.get_type_hints(model)  # resolves the forward references that model_fields keeps
    for name, field in model.model_fields.items():
        key = field.alias or name
        hint = hints.get(name, field.annotation)
        if isinstance(hint, typing.TypeVar):  # Action[str, Any]: the parametrized field has the real type
            hint = field.annotation
        strategy = strategy_for(hint, name, ids)
        if model.__name__.startswith("Action") and name == "type":
            strategy = st.one_of(st.sampled_from(ACTION_TYPES), text)
        (required if field.is_required() else optional)[key] = strategy
    if "type" in optional:  # the tag of a request or content part: its Literal, always
        required["type"] = optional.pop("type")
    return st.fixed_dictionaries(required, optional=optional)


REQUEST_MODELS: list[type[BaseModel]] = list(typing.get_args(typing.get_args(ChatKitReq)[0]))


def valid_requests(ids: Ids) -> st.SearchStrategy[dict[str, Any]]:
    """A body that ChatKitReq accepts, of any of the 16 types, aimed mostly at real ids."""
    return st.one_of([model_strategy(model, ids) for model in REQUEST_MODELS])


# --- mutations ----------------------------------------------------------------------------------------


def _paths(value: Any, here: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [here]
    if isinstance(value, dict):
        for key, item in value.items():
            found += _paths(item, (*here, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += _paths(item, (*here, index))
    return found


def _replace(value: Any, path: tuple[Any, ...], new: Any) -> Any:
    if not path:
        return new
    copy = dict(value) if isinstance(value, dict) else list(value)
    copy[path[0]] = _replace(value[path[0]], path[1:], new)
    return copy


def _drop(value: Any, path: tuple[Any, ...]) -> Any:
    if len(path) == 1:
        copy = dict(value) if isinstance(value, dict) else list(value)
        del copy[path[0]]
        return copy
    return _replace(value, path[:1], _drop(value[path[0]], path[1:]))


def _nested(depth: int, leaf: Any) -> Any:
    for level in range(depth):
        leaf = [leaf] if level % 2 else {"k": leaf}
    return leaf


@st.composite
def mutated(draw: st.DrawFn, valid: st.SearchStrategy[dict[str, Any]]) -> dict[str, Any]:
    body = draw(valid)
    paths = _paths(body)[1:]
    # A 1 MB body is expensive to send and, at Levels 1 and 2, stays in memory: one mutation in 16.
    how = draw(st.sampled_from(["wrong-type", "drop", "extra", "edge-text", "deep"] * 3 + ["huge"]))
    path = draw(st.sampled_from(paths))
    if how == "wrong-type":
        return _replace(body, path, draw(json_values))
    if how == "drop":
        return _drop(body, path)
    if how == "extra":
        target = draw(st.sampled_from([p for p in [(), *paths] if isinstance(_get(body, p), dict)]))
        return _replace(body, target, {**_get(body, target), draw(text): draw(json_values)})
    if how == "edge-text":
        return _replace(body, path, draw(st.text(st.sampled_from(EDGE_CHARACTERS), min_size=1, max_size=8)))
    if how == "huge":
        return _replace(body, path, draw(st.sampled_from(["x" * 1_000_000, "\u05d0" * 300_000, 10**4000])))
    return _replace(body, path, _nested(draw(st.integers(50, 400)), draw(json_leaves)))


def _get(value: Any, path: tuple[Any, ...]) -> Any:
    for step in path:
        value = value[step]
    return value


def encode(body: Any) -> bytes:
    """JSON as a client library writes it: ASCII, so lone surrogates travel as \\ud800 escapes."""
    return json.dumps(body, ensure_ascii=True).encode()


def request_bodies(ids: Ids) -> st.SearchStrategy[bytes]:
    """Valid bodies half the time; mutated ones a third; and bodies that are not JSON at all."""
    valid = valid_requests(ids)  # built once: building walks every model
    return st.one_of(
        valid.map(encode),
        valid.map(encode),
        valid.map(encode),
        mutated(valid).map(encode),
        mutated(valid).map(encode),
        st.binary(max_size=40),
    )
