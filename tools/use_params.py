"""Make a complete params file (e.g. configs/paper.yaml) the workspace's params.yaml, validated.

    python -m tools.use_params configs/paper.yaml --set data.path=/data/galaxyzoo && dvc exp run -n paper

DVC reads its params from ``params.yaml`` only (``dvc exp run -S`` changes one key at a time, never
a whole file), so a named configuration becomes a run by replacing that file; ``dvc exp show`` and
``dvc metrics diff`` then compare it with every other run as usual. ``--set KEY=VALUE`` (repeatable;
VALUE is YAML: ``null``, ``3``, ``[0.7, 0.8]``) changes a dotted key of the copy, creating missing
mappings, as ``dvc exp run -S`` would. The result is validated by :func:`galaxy_xai.config.config_from_dict`
before it replaces params.yaml, so a bad file or key leaves params.yaml untouched and the error
names the key. Comments and layout of the source file are kept (ruamel.yaml, DVC's own YAML library).
"""

from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path

import yaml
from ruamel.yaml import YAML, YAMLError
from ruamel.yaml.comments import CommentedMap, CommentedSeq

from galaxy_xai.config import ConfigError, config_from_dict, load_config, read_params_text
from galaxy_xai.io import atomic_path


def parse_assignment(text: str) -> tuple[list[str], object]:
    """``"a.b=VALUE"`` -> (["a", "b"], VALUE parsed as YAML); ConfigError on a malformed one."""
    key, sep, value = text.partition("=")
    parts = key.strip().split(".")
    if not sep or not all(parts):
        raise ConfigError(f"--set {text!r}: expected KEY=VALUE with a dotted KEY, e.g. data.path=/data/galaxyzoo")
    try:
        return parts, yaml.safe_load(value)
    except yaml.YAMLError as err:
        raise ConfigError(f"--set {text!r}: VALUE is not YAML: {err}") from None


def set_key(tree: dict, parts: list[str], value: object) -> None:
    """Set ``tree[p0][p1]...[pn] = value`` in place, creating missing mappings on the way."""
    node = tree
    for depth, part in enumerate(parts[:-1]):
        child = node.get(part)
        if child is None:
            child = node[part] = CommentedMap()
        if not isinstance(child, dict):
            where = ".".join(parts[: depth + 1])
            raise ConfigError(f"--set {'.'.join(parts)}: {where} is {child!r}, not a mapping")
        node = child
    if isinstance(value, list):  # a list on one line, as params files write them
        value = CommentedSeq(value)
        value.fa.set_flow_style()
    node[parts[-1]] = value


def render(source: Path, assignments: list[str]) -> str:
    """The text of ``source`` with the ``--set`` assignments applied (comments kept)."""
    rt = YAML(typ="rt")
    rt.preserve_quotes = True
    rt.width = 4096  # never re-wrap long comment lines
    # Write null as `null` (ruamel's default is an empty value, which reads back the same but hides it).
    rt.representer.add_representer(type(None), lambda r, _: r.represent_scalar("tag:yaml.org,2002:null", "null"))
    try:
        tree = rt.load(read_params_text(source))
    except YAMLError as err:  # ruamel's, e.g. a key given twice
        raise ConfigError(f"{source}: not valid YAML: {err}") from None
    if not isinstance(tree, dict):
        raise ConfigError(f"{source}: expected a mapping of params, got {type(tree).__name__}")
    for text in assignments:
        set_key(tree, *parse_assignment(text))
    out = io.StringIO()
    rt.dump(tree, out)
    return out.getvalue()


def use_params(source: Path, assignments: list[str], out: Path = Path("params.yaml")) -> str:
    """Write ``source`` + ``assignments`` to ``out`` if it validates; return the text written.

    Raises ConfigError (naming the key) and leaves ``out`` as it was otherwise.
    """
    if not source.is_file():
        raise ConfigError(f"{source}: params file not found")
    text = render(source, assignments)
    where = f"{source} with --set {' '.join(assignments)}" if assignments else str(source)
    config_from_dict(yaml.safe_load(text), source=where)
    with atomic_path(out) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return text


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path, help="a complete params file, e.g. configs/paper.yaml")
    parser.add_argument("--set", dest="assignments", action="append", default=[], metavar="KEY=VALUE",
                        help="change a dotted key of the copy (repeatable), e.g. data.path=/data/galaxyzoo")
    parser.add_argument("--out", type=Path, default=Path("params.yaml"), help="where to write (params.yaml)")
    args = parser.parse_args(argv)
    try:
        use_params(args.source, args.assignments, args.out)
    except ConfigError as err:
        sys.exit(f"error: {err}")
    data_path = Path(load_config(args.out).data.path)
    print(f"{args.out}: now {args.source}" + "".join(f", {a}" for a in args.assignments) + " (valid)")
    if not data_path.is_dir():
        print(f"note: data.path = {data_path} is not a folder yet; dvc repro needs it (docs/real-data.md)",
              file=sys.stderr)


if __name__ == "__main__":
    main()
