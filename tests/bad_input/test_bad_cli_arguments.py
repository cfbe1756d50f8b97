"""Bad JSON arguments (`--context`, `--output`) are one input error (exit 2, one line on stderr),
never "internal error": a deeply nested or over-long number, non-UTF-8 files, NaN. (A context
nested 100,000 levels was an internal RecursionError; a non-UTF-8 file a UnicodeDecodeError.)"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from flowcraft_core.cli import main

EMPTY = {"id": "empty", "nodes": [], "edges": []}


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        (b'{"a": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", "not valid JSON (nested too deeply)"),
        (b'{"a": ' + b"9" * 5_000 + b"}", "not valid JSON (Exceeds the limit (4300 digits)"),
        (b'{"a": "\xe9"}', "not UTF-8 text (byte 7)"),
        (b'{"a": ', "not valid JSON (line 1, column 7"),
        (b"[1]", "expected a JSON object"),
        (b'{"a": NaN}', "nan is not a finite number"),
        (b'{"a": ' + b"[" * 600 + b"]" * 600 + b"}", "key 'a': nested more than 500 levels"),
    ],
    ids=["deep", "long-integer", "latin-1", "truncated", "array", "nan", "deeper-than-500"],
)
def test_a_bad_context_file_is_one_input_error(
    content: bytes, fragment: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blueprint = tmp_path / "empty.json"
    blueprint.write_text(json.dumps(EMPTY), encoding="utf-8")
    context = tmp_path / "ctx.json"
    context.write_bytes(content)
    code = main(["run", str(blueprint), "--context", f"@{context}"])
    out, err = capsys.readouterr()
    assert (code, out) == (2, "")
    assert err.startswith("flowcraft: error: ") and fragment in err, err
    assert "internal error" not in err and len(err.splitlines()) == 1
