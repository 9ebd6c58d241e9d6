"""evals/: the scenarios are well-formed, their files exist, and the broken fixture is really broken."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

from scripted_model_server import ScriptedModel
from test_chatkit_check import run_check, serving

ROOT = Path(__file__).resolve().parent.parent
EVALS = json.loads((ROOT / "evals" / "evals.json").read_text())


def test_evals_are_in_the_skill_creator_format() -> None:
    assert EVALS["skill_name"] == "chatkit-server"
    ids = [e["id"] for e in EVALS["evals"]]
    assert len(ids) >= 8 and len(set(ids)) == len(ids)
    for case in EVALS["evals"]:
        assert set(case) == {"id", "prompt", "expected_output", "files", "expectations"}, case["id"]
        assert case["prompt"] and case["expected_output"] and case["expectations"]
        for path in case["files"]:
            assert (ROOT / path).is_file(), path


async def test_the_check_names_every_reported_bug_of_the_broken_fixture(paced_model: ScriptedModel) -> None:
    # The support chat of eval 8, as the user hands it over.
    spec = importlib.util.spec_from_file_location("broken_chat", ROOT / "evals" / "files" / "broken_chat" / "server.py")
    assert spec and spec.loader
    server = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(server)
    async with serving(server.app) as url:
        results = await run_check(url, "-H", "X-User: a", "--second-header", "X-User: b")
    failed = {name for name, r in results.items() if r["status"] == "fail"}
    assert "history.latest" in failed  # report 1: "asc" history
    assert "threads.list" in failed  # reports 2 and 3: no `after`, and JSONResponse(bytes) is a 500
    assert "isolation.list" in failed  # report 4: no user scoping
    assert "bad.empty_object" in failed  # report 5: no validation before process()
