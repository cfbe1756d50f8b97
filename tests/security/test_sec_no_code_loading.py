"""No pickle anywhere, no eval/exec, YAML loaded safely: the packages' source is scanned (the
scanner is checked on a bad sample first), and a YAML blueprint with Python tags is refused by
`load_blueprint` and the CLI without constructing anything."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

from flowcraft_core.blueprint import load_blueprint
from flowcraft_core.cli import main
from flowcraft_core.errors import BlueprintError

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("flowcraft_core", "flowcraft_bullmq")
#: Modules that turn bytes into arbitrary objects (or run code while doing it).
UNSAFE_MODULES = frozenset(
    {"pickle", "_pickle", "cPickle", "marshal", "shelve", "dill", "cloudpickle", "jsonpickle",
     "joblib", "copyreg"}
)  # fmt: skip
UNSAFE_BUILTINS = frozenset({"eval", "exec", "compile", "__import__"})
UNSAFE_YAML = frozenset({"load_all", "unsafe_load", "unsafe_load_all", "full_load",
                         "full_load_all", "Loader", "FullLoader", "UnsafeLoader", "CLoader",
                         "CFullLoader", "CUnsafeLoader"})  # fmt: skip
#: The only loader `yaml.load` may be given: the loader module's SafeConstructor subclass.
SAFE_YAML_LOADERS = frozenset({"_JsonSafeLoader", "SafeLoader", "CSafeLoader"})


def unsafe_uses(source: str) -> list[str]:
    """Each import, call or name that could load code or objects from data, as `line: what`."""
    found: list[str] = []
    for node in ast.walk(ast.parse(source)):
        where = f"{getattr(node, 'lineno', 0)}"
        if isinstance(node, ast.Import):
            found += [f"{where}: import {a.name}" for a in node.names if _unsafe(a.name)]
        elif isinstance(node, ast.ImportFrom) and node.module and _unsafe(node.module):
            found.append(f"{where}: from {node.module} import")
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            if node.func.id in UNSAFE_BUILTINS:
                found.append(f"{where}: {node.func.id}()")
        elif isinstance(node, ast.Attribute) and _is_name(node.value, "yaml"):
            if node.attr in UNSAFE_YAML:
                found.append(f"{where}: yaml.{node.attr}")
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            if _is_name(node.func.value, "yaml") and node.func.attr == "load":
                loader = next((k.value for k in node.keywords if k.arg == "Loader"), None)
                if not (isinstance(loader, ast.Name) and loader.id in SAFE_YAML_LOADERS):
                    found.append(f"{where}: yaml.load without a safe Loader")
    return found


def _unsafe(module: str) -> bool:
    return module.split(".")[0] in UNSAFE_MODULES


def _is_name(node: ast.expr, name: str) -> bool:
    return isinstance(node, ast.Name) and node.id == name


def test_the_scanner_finds_every_kind_of_unsafe_use() -> None:
    sample = (
        "import pickle\nfrom marshal import loads\nimport shelve as s\n"
        "eval('1')\nexec('x=1')\nyaml.load(text)\nyaml.load(text, Loader=yaml.Loader)\n"
        "yaml.unsafe_load(text)\nyaml.full_load(text)\n"
        "yaml.load(text, Loader=_JsonSafeLoader)\njson.loads(text)\n"
    )
    assert sorted(int(line.split(": ", 1)[0]) for line in unsafe_uses(sample)) == [
        1, 2, 3, 4, 5, 6, 7, 7, 8, 9,
    ]  # fmt: skip


@pytest.mark.parametrize("package", PACKAGES)
def test_no_pickle_eval_exec_or_unsafe_yaml_in_the_packages(package: str) -> None:
    files = sorted((ROOT / package).rglob("*.py"))
    assert len(files) > 10
    problems = [
        f"{path.relative_to(ROOT)}:{use}"
        for path in files
        for use in unsafe_uses(path.read_text(encoding="utf-8"))
    ]
    assert problems == []


EVIL_YAML = """\
id: evil
nodes:
  - id: a
    uses: !!python/object/apply:os.system ["touch {marker}"]
edges: []
"""


@pytest.mark.parametrize(
    "tag",
    [
        "!!python/object/apply:os.system",
        "!!python/object/new:os.system",
        "!!python/name:os.system",
        "!!python/module:os",
    ],
)
def test_yaml_python_tags_construct_nothing(tag: str, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    text = EVIL_YAML.format(marker=marker).replace("!!python/object/apply:os.system", tag)
    with pytest.raises(BlueprintError) as caught:
        load_blueprint(text)
    assert [(p.path, p.code) for p in caught.value.problems] == [("$", "INVALID_SYNTAX")]
    assert "only plain JSON data is allowed" in str(caught.value)
    assert not marker.exists()


def test_the_cli_refuses_yaml_python_tags(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    marker = tmp_path / "pwned"
    evil = tmp_path / "bps" / "evil.yaml"
    evil.parent.mkdir()
    evil.write_text(EVIL_YAML.format(marker=marker), encoding="utf-8")
    assert main(["validate", str(evil)]) == 1
    out, err = capsys.readouterr()
    assert "INVALID_SYNTAX" in out and "Traceback" not in out + err
    good = tmp_path / "good.json"
    good.write_text(json.dumps({"id": "good", "nodes": [], "edges": []}), encoding="utf-8")
    # A blueprint directory holding it is refused as a whole (exit 2, one line).
    assert main(["run", str(good), "--blueprints", str(evil.parent)]) == 2
    out, err = capsys.readouterr()
    assert "evil.yaml" in err and "Traceback" not in err and len(err.splitlines()) <= 3
    assert not marker.exists()
