"""Keep every Python block in SKILL.md and references/ a verbatim copy of a region of a tested file.

A block is bound to its source by the comment line right above its fence:

    <!-- snippet: examples/level1/app.py#server -->
    ```python title="examples/level1/app.py"
    ...
    ```

The region is the code between `# --8<-- [start:server]` and `# --8<-- [end:server]` in that file
(pymdownx.snippets' section syntax), dedented, with any nested marker lines dropped. Without
`#name` the block is the whole file.

    python tests/docs_snippets.py           # report drift, exit 1 if any
    python tests/docs_snippets.py --write   # rewrite the markdown from the files (make docs-sync)
"""

from __future__ import annotations

import argparse
import re
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOCS = ["SKILL.md", "references/*.md"]
SOURCE_DIRS = ("examples/", "scripts/")

_SNIPPET = re.compile(r"^<!-- snippet: (?P<path>[^#\s]+)(?:#(?P<region>[\w-]+))? -->$")
_FENCE_OPEN = re.compile(r"^```(?P<lang>\w+)?(?P<rest>.*)$")
_MARKER = re.compile(r"^\s*# --8<-- \[(?P<kind>start|end):(?P<name>[\w-]+)\]\s*$")


@dataclass
class Block:
    doc: Path
    line: int  # 1-based line of the opening fence
    lang: str
    source: str | None  # "path#region" from the comment above, if any
    body: list[str]
    start: int  # index of the first body line
    end: int  # index of the closing fence


def doc_files() -> list[Path]:
    files: list[Path] = []
    for pattern in DOCS:
        files += sorted(ROOT.glob(pattern))
    return files


def blocks(doc: Path, lines: list[str]) -> list[Block]:
    found: list[Block] = []
    i = 0
    while i < len(lines):
        match = _FENCE_OPEN.match(lines[i])
        if not match or lines[i].strip() == "```":
            i += 1
            continue
        end = next(j for j in range(i + 1, len(lines)) if lines[j].rstrip() == "```")
        above = _SNIPPET.match(lines[i - 1].strip()) if i else None
        source = f"{above['path']}#{above['region'] or ''}" if above else None
        found.append(Block(doc, i + 1, match["lang"] or "", source, lines[i + 1 : end], i + 1, end))
        i = end + 1
    return found


def region(source: str) -> list[str]:
    """The lines of `path#name`, or raise ValueError saying why they can't be found."""
    path, _, name = source.partition("#")
    if not path.startswith(SOURCE_DIRS):
        raise ValueError(f"{path}: snippets must come from {' or '.join(SOURCE_DIRS)}")
    file = ROOT / path
    if not file.is_file():
        raise ValueError(f"{path}: no such file")
    lines = file.read_text().splitlines()
    if name:
        starts = [
            i
            for i, line in enumerate(lines)
            if (m := _MARKER.match(line)) and m["kind"] == "start" and m["name"] == name
        ]
        ends = [
            i for i, line in enumerate(lines) if (m := _MARKER.match(line)) and m["kind"] == "end" and m["name"] == name
        ]
        if len(starts) != 1 or len(ends) != 1 or ends[0] < starts[0]:
            raise ValueError(f"{path}: region {name!r} needs exactly one start and one end marker")
        lines = lines[starts[0] + 1 : ends[0]]
    kept = [line for line in lines if not _MARKER.match(line)]
    return textwrap.dedent("\n".join(kept)).strip("\n").splitlines()


def problems_and_fixes() -> tuple[list[str], dict[Path, list[str]]]:
    """Every drift or unbound Python block, and the rewritten text of each doc that drifted."""
    problems: list[str] = []
    rewritten: dict[Path, list[str]] = {}
    for doc in doc_files():
        lines = doc.read_text().splitlines()
        new = list(lines)
        for block in reversed(blocks(doc, lines)):  # reversed: splicing keeps earlier indexes valid
            where = f"{doc.relative_to(ROOT)}:{block.line}"
            if block.lang != "python":
                if block.source:
                    problems.append(f"{where}: a snippet comment above a {block.lang or 'plain'} block")
                continue
            if not block.source:
                problems.append(f"{where}: Python block without a '<!-- snippet: path#region -->' line above it")
                continue
            try:
                expected = region(block.source)
            except ValueError as exc:
                problems.append(f"{where}: {exc}")
                continue
            if block.body != expected:
                problems.append(f"{where}: differs from {block.source} (run make docs-sync)")
                new[block.start : block.end] = expected
        if new != lines:
            rewritten[doc] = new
    return problems, rewritten


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--write", action="store_true", help="rewrite drifted blocks from their source regions")
    args = parser.parse_args(argv)
    problems, rewritten = problems_and_fixes()
    if args.write:
        for doc, lines in rewritten.items():
            doc.write_text("\n".join(lines) + "\n")
            print(f"rewrote {doc.relative_to(ROOT)}")
        problems = [p for p in problems if "run make docs-sync" not in p]
    for problem in problems:
        print(problem, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
