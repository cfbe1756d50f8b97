"""Hypothesis: damaged blueprints, as documents and as text, either load or raise BlueprintError
(never another exception), within a time bound, and `flowcraft validate` answers 0 or 1 with
nothing on stderr. tests/blueprint/test_bp_properties damages parsed documents; this adds
damage to the JSON and YAML text (cut, inserted or swapped characters), renamed and dropped
fields, values of the wrong kind, and the CLI route."""

from __future__ import annotations

import copy
import io
import json
import tempfile
import time
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from typing import Any

import yaml
from hypothesis import given
from hypothesis import strategies as st

from flowcraft_core.blueprint import load_blueprint
from flowcraft_core.cli import main
from flowcraft_core.errors import BlueprintError

VALID: dict[str, Any] = {
    "id": "orders",
    "metadata": {"version": "3", "cycleEntryPoints": ["loop"]},
    "nodes": [
        {"id": "fetch", "uses": "http", "params": {"url": "https://x", "n": 1.5}},
        {"id": "score", "uses": "score", "inputs": {"order": "fetch"},
         "config": {"maxRetries": 3, "retryDelay": 10, "timeout": 500, "fallback": "fb"}},
        {"id": "fb", "uses": "fallback-score"},
        {"id": "loop", "uses": "loop-controller",
         "params": {"condition": "iteration < 3", "maxIterations": 5}},
        {"id": "body", "uses": "work", "config": {"joinStrategy": "any"}},
        {"id": "nap", "uses": "sleep", "params": {"duration": "1s"}},
    ],
    "edges": [
        {"source": "fetch", "target": "score", "transform": "result.output.items"},
        {"source": "score", "target": "loop", "condition": "result.output.score >= 0.5"},
        {"source": "loop", "target": "body", "action": "continue"},
        {"source": "body", "target": "loop"},
        {"source": "loop", "target": "nap", "action": "break"},
    ],
}  # fmt: skip
TIME_BOUND_S = 5.0

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=5,
)


def _containers(value: Any) -> list[Any]:
    found = [value]
    children = value.values() if isinstance(value, dict) else value
    for child in children:
        if isinstance(child, dict | list):
            found += _containers(child)
    return found


@st.composite
def damaged_documents(draw: st.DrawFn) -> Any:
    doc = copy.deepcopy(VALID)
    for _ in range(draw(st.integers(1, 3))):
        target = draw(st.sampled_from(_containers(doc)))
        if not target:
            continue
        key = draw(st.sampled_from(list(target.keys()) if isinstance(target, dict) else
                                   list(range(len(target)))))  # fmt: skip
        how = draw(st.sampled_from(["drop", "rename", "replace", "wrap", "duplicate"]))
        if how == "drop":
            del target[key]
        elif how == "rename" and isinstance(target, dict):
            target[draw(st.text(max_size=6))] = target.pop(key)
        elif how == "replace":
            target[key] = draw(json_values)
        elif how == "wrap":
            target[key] = [target[key]] if draw(st.booleans()) else {"v": target[key]}
        elif isinstance(target, list):
            target.append(copy.deepcopy(target[key]))
    return doc


@st.composite
def damaged_texts(draw: st.DrawFn) -> tuple[str, str]:
    """(suffix, text): VALID as JSON or YAML with characters cut, inserted or swapped."""
    suffix = draw(st.sampled_from([".json", ".yaml"]))
    text = json.dumps(VALID, indent=1) if suffix == ".json" else yaml.safe_dump(VALID)
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(text) - 1))
        how = draw(st.sampled_from(["cut", "insert", "swap"]))
        if how == "cut":
            text = text[:at] + text[at + draw(st.integers(1, 20)) :]
        elif how == "insert":
            noise = draw(st.sampled_from(['"', "{", "[", "]", ":", ",", "\n", "- ", "&a ", "*a",
                                          "!!python/none ", "\t", "1e999", "\\u0000", "#"])
                         | st.text(max_size=3))  # fmt: skip
            text = text[:at] + noise + text[at:]
        elif at + 1 < len(text):
            text = text[:at] + text[at + 1] + text[at] + text[at + 2 :]
    return suffix, text


def _loads_or_blueprint_error(source: Any) -> None:
    began = time.monotonic()
    try:
        load_blueprint(source)
    except BlueprintError as err:
        assert err.problems
        assert all(p.path and p.code and p.message for p in err.problems)
    assert time.monotonic() - began < TIME_BOUND_S


def _validate_exits_0_or_1(suffix: str, text: str) -> None:
    with tempfile.TemporaryDirectory() as directory:
        file = Path(directory) / f"bp{suffix}"
        file.write_text(text, encoding="utf-8", errors="surrogatepass")
        out, err = io.StringIO(), io.StringIO()
        with redirect_stdout(out), redirect_stderr(err):
            code = main(["validate", str(file)])
    assert code in (0, 1), (code, err.getvalue())
    assert err.getvalue() == ""
    for line in out.getvalue().splitlines()[:-1]:
        assert (line.startswith(f"{file}: ") and line.endswith("]")) or line.endswith(": ok")


@given(damaged_documents())  # examples: the hypothesis profile (100; thorough: 1,000)
def test_damaged_documents_load_or_raise_blueprint_error(doc: Any) -> None:
    _loads_or_blueprint_error(doc)
    _validate_exits_0_or_1(".json", json.dumps(doc))


@given(damaged_texts())
def test_damaged_text_loads_or_raises_blueprint_error(case: tuple[str, str]) -> None:
    suffix, text = case
    _loads_or_blueprint_error(text + "\n")  # with a newline: a document, never a path
    _validate_exits_0_or_1(suffix, text)


def test_the_undamaged_document_is_valid() -> None:
    assert load_blueprint(VALID).id == "orders"
