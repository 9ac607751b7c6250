"""The code a DVC stage runs: the import closure of its module, and dvc.yaml's stages expanded.

``tools.sync_dvc_deps`` writes each stage's code deps from :func:`import_closure`, and
``tests/test_dvc_deps.py`` checks them with the same function.
"""

from __future__ import annotations

import ast
import itertools
import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("stages", "galaxy_xai")


def module_file(root: Path, module: str) -> Path | None:
    """The file a dotted module name of one of :data:`PACKAGES` runs from, or None if not ours."""
    if module.split(".")[0] not in PACKAGES:
        return None
    base = root.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def with_parents(module: str) -> list[str]:
    """``a.b.c`` -> ``['a', 'a.b', 'a.b.c']``: importing a module first executes its packages."""
    parts = module.split(".")
    return [".".join(parts[: i + 1]) for i in range(len(parts))]


def imported_modules(source: str, module: str, is_package: bool = False) -> set[str]:
    """Dotted names of every module an import statement anywhere in ``source`` may execute.

    ``module`` is the importing module's own name (to resolve relative imports). For
    ``from pkg import name`` both ``pkg`` and ``pkg.name`` are returned: ``name`` may be a submodule
    (the caller keeps only names that are files). Imports inside functions count too: a stage
    that runs them depends on them.
    """
    package = module if is_package else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                found.update(with_parents(alias.name))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([node.module] if node.module else [])])
            else:
                base = node.module or ""
            found.update(with_parents(base))
            found.update(f"{base}.{alias.name}" for alias in node.names if alias.name != "*")
    return found


def import_closure(root: Path, module: str) -> set[str]:
    """Repository-relative paths of the files ``python -m <module>`` executes from this repository."""
    todo, seen = with_parents(module), set()
    files: set[Path] = set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        path = module_file(root, name)
        if path is None:
            continue
        files.add(path)
        todo.extend(imported_modules(path.read_text(), name, is_package=path.name == "__init__.py"))
    return {p.relative_to(root).as_posix() for p in files}


def params_value(params: dict, reference: str) -> list[str]:
    """The values a ``${a.b}`` reference of a ``foreach`` / ``matrix`` iterates over: the keys of a
    mapping (as DVC iterates them), the items of a list, as strings."""
    if isinstance(reference, (list, dict)):  # written out in dvc.yaml
        return [str(v) for v in reference]
    match = re.fullmatch(r"\$\{([\w.]+)\}", str(reference))
    if not match:
        raise ValueError(f"{reference!r}: only ${{params.key}} references are expanded here")
    value = params
    for part in match.group(1).split("."):
        value = value[part]
    return [str(v) for v in value]


def expanded_stages(root: Path = ROOT) -> dict[str, dict]:
    """Every stage of dvc.yaml as DVC names it: ``foreach`` stages expanded to ``name@key`` with
    ``${key}`` filled in, ``matrix`` stages to ``name@v1-v2`` with ``${item.<axis>}`` filled in."""
    pipeline = yaml.safe_load((root / "dvc.yaml").read_text())
    params = yaml.safe_load((root / "params.yaml").read_text())
    stages: dict[str, dict] = {}
    for name, stage in pipeline["stages"].items():
        if "foreach" in stage:
            for key in params_value(params, stage["foreach"]):
                text = yaml.safe_dump(stage["do"]).replace("${key}", key)
                stages[f"{name}@{key}"] = yaml.safe_load(text)
        elif "matrix" in stage:
            axes = {axis: params_value(params, ref) for axis, ref in stage["matrix"].items()}
            body = yaml.safe_dump({k: v for k, v in stage.items() if k != "matrix"})
            for combination in itertools.product(*axes.values()):
                text = body
                for axis, value in zip(axes, combination, strict=True):
                    text = text.replace(f"${{item.{axis}}}", value)
                stages[f"{name}@{'-'.join(combination)}"] = yaml.safe_load(text)
        else:
            stages[name] = stage
    return stages


def stage_module(stage: dict) -> str:
    match = re.search(r"python -m ([\w.]+)", stage["cmd"])
    if not match:
        raise ValueError(f"cmd {stage['cmd']!r} does not run `python -m <module>`")
    return match.group(1)


def code_deps_problems(name: str, stage: dict, root: Path = ROOT) -> list[str]:
    """What is wrong with one stage's code deps: missing files of its closure, stale .py deps."""
    closure = import_closure(root, stage_module(stage))
    listed = {d for d in stage.get("deps", []) if isinstance(d, str) and d.endswith(".py")}
    problems = []
    if missing := sorted(closure - listed):
        problems.append(f"stage {name}: deps lack {', '.join(missing)} (imported when it runs)")
    if stale := sorted(listed - closure):
        problems.append(f"stage {name}: deps list {', '.join(stale)}, which it does not import")
    return problems
