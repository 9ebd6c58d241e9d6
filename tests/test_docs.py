"""The skill text: snippets match their sources, SKILL.md keeps its shape, and the Validate command works
against a running server. The strict site build is test_site.py's (one build serves all its checks)."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
import tomllib

import httpx
import pytest
import yaml
from chatkit_protocol import CHATKIT, assistant_texts, sse_events
from docs_snippets import ROOT, doc_files, problems_and_fixes
from live_server import serve_process
from scripted_model_server import ScriptedModel

SKILL = ROOT / "SKILL.md"


def test_every_python_block_is_its_source_region() -> None:
    problems, _ = problems_and_fixes()
    assert problems == []


def _frontmatter() -> dict[str, str]:
    text = SKILL.read_text()
    assert text.startswith("---\n")
    return yaml.safe_load(text.split("---\n")[1])


def test_skill_frontmatter_is_valid() -> None:
    meta = _frontmatter()
    assert set(meta) <= {"name", "description", "license", "allowed-tools", "metadata", "compatibility"}
    assert re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", meta["name"]) and len(meta["name"]) <= 64
    assert 0 < len(meta["description"]) <= 1024
    assert "<" not in meta["description"] and ">" not in meta["description"]
    assert meta["allowed-tools"]


def test_skill_is_short_and_routes_to_every_reference() -> None:
    text = SKILL.read_text()
    assert len(text.splitlines()) < 500
    for reference in sorted((ROOT / "references").glob("*.md")):
        assert f"](references/{reference.name}" in text, f"SKILL.md never links {reference.name}"
    for script in sorted((ROOT / "scripts").glob("*.py")):
        assert f"scripts/{script.name}" in text, f"SKILL.md never mentions {script.name}"


def test_every_reference_says_when_to_read_it() -> None:
    for doc in doc_files():
        if doc == SKILL:
            continue
        lines = doc.read_text().splitlines()
        assert lines[0].startswith("# "), doc
        assert any(line.startswith("Read this when") for line in lines[:5]), f"{doc.name}: no 'Read this when'"
        if len(lines) > 100:
            assert "## Contents" in lines[:40] or any(ln.startswith("- [") for ln in lines[:40]), f"{doc.name}: no TOC"


def test_every_reference_is_in_the_site_nav() -> None:
    nav = str(yaml.safe_load((ROOT / "mkdocs.yml").read_text())["nav"])
    for reference in (ROOT / "references").glob("*.md"):
        assert f"references/{reference.name}" in nav


def _validate_command() -> str:
    section = SKILL.read_text().split("### 5. Validate")[1]
    return next(line.strip() for line in section.splitlines() if line.strip().startswith("curl "))


def test_validate_command_works_against_a_running_server(model: ScriptedModel) -> None:
    command = _validate_command()
    body = shlex.split(command)[shlex.split(command).index("-d") + 1]
    with serve_process("level2.app:app") as base_url:
        response = httpx.post(f"{base_url}{CHATKIT}", content=body, headers={"Content-Type": "application/json"})
        assert response.status_code == 200
        assert assistant_texts(sse_events(response.text)) == ["You said: Hello"]
        if shutil.which("curl"):  # the exact command, only the port swapped
            curl = subprocess.run(
                command.replace("http://127.0.0.1:8000", base_url), shell=True, capture_output=True, text=True
            )
            assert curl.returncode == 0 and '"assistant_message"' in curl.stdout


def test_example_requirements_are_the_pinned_versions() -> None:
    pinned = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"])
    for requirements in sorted((ROOT / "examples").glob("level*/requirements.txt")):
        wanted = {line.strip() for line in requirements.read_text().splitlines() if line.strip()}
        assert wanted <= pinned, f"{requirements}: {wanted - pinned} not pinned in pyproject.toml"


@pytest.mark.parametrize("check", [["check"], ["format", "--check"]])
def test_ruff_is_clean(check: list[str]) -> None:
    out = subprocess.run([sys.executable, "-m", "ruff", *check, "."], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_every_test_the_docs_cite_exists() -> None:
    """A "Tests that prove it" line naming a test that was renamed or removed proves nothing."""
    defined = set()
    for source in [*(ROOT / "tests").glob("test_*.py"), *(ROOT / "examples").rglob("test_*.py")]:
        defined |= set(re.findall(r"^\s*(?:async )?def (test_\w+)", source.read_text(), re.MULTILINE))
    cited = {name for doc in doc_files() for name in re.findall(r"\b(test_\w+)\b(?!\.py|\*)", doc.read_text())}
    assert cited, "no test names found in the docs"
    assert sorted(cited - defined) == []
