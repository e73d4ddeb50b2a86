"""The one way YAML and JSON from users is read: bounded in size, nesting and aliases.

A YAML alias bomb ("billion laughs") is a few hundred bytes that expand to gigabytes once code
walks them; a deeply nested document exhausts the recursion of any loader; a huge file is read
whole. Every file a user hands us (checklist, intent, manifests, kubeconfig, queries, the run
files of the archive) goes through here and is refused in one line, naming the file and the
limit, before anything expands it. The caller says which error type (its domain's) to raise.

YAML is scanned once as an event stream (libyaml's parser when present) counting depth, aliases
and the node count as the aliases would expand it; only then is it loaded.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from kgents_pipeline.errors import KgentsError

_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@dataclass(frozen=True)
class Limits:
    """What a document may hold. The defaults are far above any launch manifest or checklist."""

    max_bytes: int = 16 * 1024 * 1024
    max_depth: int = 100  # nested mappings/sequences (Kubernetes objects nest ~20 deep)
    max_aliases: int = 1_000  # alias nodes (`*name`) in a stream
    max_nodes: int = 2_000_000  # nodes once every alias is expanded


DEFAULT_LIMITS = Limits()


def _mib(n: int) -> str:
    return f"{n / (1024 * 1024):g} MiB" if n >= 1024 * 1024 else f"{n} bytes"


def read_bytes(
    path: str | Path, *, error: type[KgentsError], limits: Limits = DEFAULT_LIMITS
) -> bytes:
    """A file's bytes, refused when it is not a regular file or larger than `limits.max_bytes`."""
    p = Path(path)
    try:
        with open(p, "rb") as fh:
            data = fh.read(limits.max_bytes + 1)
    except IsADirectoryError:
        raise error(f"{p}: is a directory, not a file") from None
    except FileNotFoundError:
        raise error(f"{p}: no such file") from None
    except OSError as exc:
        raise error(f"{p}: cannot read: {exc.strerror or exc}") from None
    if len(data) > limits.max_bytes:
        raise error(f"{p}: larger than {_mib(limits.max_bytes)}: refused")
    return data


def read_text(
    path: str | Path, *, error: type[KgentsError], limits: Limits = DEFAULT_LIMITS
) -> str:
    """A file as UTF-8 text (bounded); a file that is not UTF-8 is refused in one line."""
    data = read_bytes(path, error=error, limits=limits)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise error(f"{path}: not UTF-8 text (byte {exc.start}: {exc.reason})") from None


def yaml_problem(exc: yaml.YAMLError) -> str:
    """PyYAML's multi-line error as one line: where (line, column) and what."""
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    problem = getattr(exc, "problem", None) or getattr(exc, "context", None) or str(exc)
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
    return where + " ".join(str(problem).split())


def check_yaml(
    text: str,
    source: str,
    *,
    error: type[KgentsError],
    limits: Limits,
    malformed: str | None = "malformed YAML at",
) -> None:
    """Walk the event stream: refuse depth, aliases or an expansion beyond `limits`. With
    `malformed=None` a stream that does not parse is left to the caller's own parser (which
    words its error) and only the limits are enforced."""
    if len(text) > limits.max_bytes:
        raise error(f"{source}: larger than {_mib(limits.max_bytes)}: refused")
    depth = aliases = nodes = 0
    anchors: dict[str, int] = {}  # anchor -> nodes the anchored node expands to
    open_nodes: list[tuple[str | None, int]] = []  # (anchor, node count before it)
    try:
        for event in yaml.parse(text, Loader=_Loader):
            if isinstance(event, yaml.MappingStartEvent | yaml.SequenceStartEvent):
                depth += 1
                if depth > limits.max_depth:
                    mark = event.start_mark
                    line = f" (line {mark.line + 1})" if mark is not None else ""
                    raise error(
                        f"{source}: nested deeper than {limits.max_depth} levels{line}: refused"
                    )
                open_nodes.append((event.anchor, nodes))
                nodes += 1
            elif isinstance(event, yaml.MappingEndEvent | yaml.SequenceEndEvent):
                depth -= 1
                anchor, before = open_nodes.pop()
                if anchor:
                    anchors[anchor] = nodes - before
            elif isinstance(event, yaml.ScalarEvent):
                nodes += 1
                if event.anchor:
                    anchors[event.anchor] = 1
            elif isinstance(event, yaml.AliasEvent):
                aliases += 1
                if aliases > limits.max_aliases:
                    raise error(f"{source}: more than {limits.max_aliases} YAML aliases: refused")
                nodes += anchors.get(event.anchor or "", 1)
            elif isinstance(event, yaml.DocumentStartEvent):
                anchors.clear()
            if nodes > limits.max_nodes:
                raise error(
                    f"{source}: expands to more than {limits.max_nodes:,} YAML nodes "
                    "(an alias bomb?): refused"
                )
    except yaml.YAMLError as exc:
        if malformed is None:
            return
        raise error(f"{source}: {malformed} {yaml_problem(exc)}") from None
    except RecursionError:
        raise error(f"{source}: nested too deeply: refused") from None


def load_all(
    text: str,
    source: str,
    *,
    error: type[KgentsError],
    limits: Limits = DEFAULT_LIMITS,
    malformed: str = "malformed YAML at",
) -> list[Any]:
    """Every document of a YAML stream (safe types only), within `limits`. `malformed` words
    the error for a stream that does not parse ("<source>: <malformed> line L, column C: ...")."""
    check_yaml(text, source, error=error, limits=limits, malformed=malformed)
    try:
        return list(yaml.load_all(text, Loader=_Loader))
    except yaml.YAMLError as exc:
        raise error(f"{source}: {malformed} {yaml_problem(exc)}") from None
    except RecursionError:
        raise error(f"{source}: nested too deeply: refused") from None


def load(
    text: str,
    source: str,
    *,
    error: type[KgentsError],
    limits: Limits = DEFAULT_LIMITS,
    malformed: str = "malformed YAML at",
) -> Any:
    """One YAML document (None when the stream is empty), within `limits`."""
    docs = load_all(text, source, error=error, limits=limits, malformed=malformed)
    if len(docs) > 1:
        raise error(f"{source}: expected one YAML document, found {len(docs)}")
    return docs[0] if docs else None


def load_file(
    path: str | Path, *, error: type[KgentsError], limits: Limits = DEFAULT_LIMITS
) -> Any:
    """One YAML document from a file (bounded, UTF-8)."""
    return load(read_text(path, error=error, limits=limits), str(path), error=error, limits=limits)


def load_json(
    data: bytes | str, source: str, *, error: type[KgentsError], limits: Limits = DEFAULT_LIMITS
) -> Any:
    """A JSON document within `limits` (size; nesting beyond Python's recursion is refused)."""
    if len(data) > limits.max_bytes:
        raise error(f"{source}: larger than {_mib(limits.max_bytes)}: refused")
    try:
        return json.loads(data)
    except json.JSONDecodeError as exc:
        raise error(f"{source}: malformed JSON at line {exc.lineno}: {exc.msg}") from None
    except UnicodeDecodeError as exc:
        raise error(f"{source}: not UTF-8 text (byte {exc.start}: {exc.reason})") from None
    except RecursionError:
        raise error(f"{source}: JSON nested too deeply: refused") from None
    except ValueError as exc:  # e.g. an integer of more than 4300 digits
        raise error(f"{source}: malformed JSON: {' '.join(str(exc).split())}") from None


def load_json_file(
    path: str | Path, *, error: type[KgentsError], limits: Limits = DEFAULT_LIMITS
) -> Any:
    """A JSON file (bounded)."""
    return load_json(
        read_bytes(path, error=error, limits=limits), str(path), error=error, limits=limits
    )
