"""Read one YAML file into plain data plus a map from key paths to line numbers.

The map lets every validation problem name the line it is about. Both come from one
parse with PyYAML's safe loader (libyaml when available), so nothing but plain data
types can be constructed.
"""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .problems import Problem, format_path

_BaseLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class YamlFloat(float):
    """A float that remembers how it was written, so `version: 384.110` stays "384.110"."""

    text: str

    def __new__(cls, value: float, text: str) -> "YamlFloat":
        obj = super().__new__(cls, value)
        obj.text = text
        return obj


class _Loader(_BaseLoader):  # type: ignore[misc, valid-type]
    pass


def _construct_float(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> YamlFloat:
    return YamlFloat(yaml.SafeLoader.construct_yaml_float(loader, node), node.value)


_Loader.add_constructor("tag:yaml.org,2002:float", _construct_float)


@dataclass
class YamlDocument:
    """A parsed file: its data and the line of every key and list item in it."""

    path: Path
    data: Any
    lines: dict[tuple, int] = field(default_factory=dict)

    def line(self, path: tuple) -> int | None:
        """The line of `path`, or of its nearest ancestor that has one."""
        while True:
            if path in self.lines:
                return self.lines[path]
            if not path:
                return None
            path = path[:-1]

    def problem(self, path: tuple, message: str, severity: str = "error") -> Problem:
        return Problem(str(self.path), self.line(path), format_path(path), message, severity)


MAX_BYTES = 8 * 2**20     # a configuration of thousands of hosts is well under a megabyte
MAX_NODES = 500_000       # values once aliases are expanded: what validation may have to walk
MAX_SCALAR = 64 * 1024    # characters in one value
MAX_DIGITS = 4000         # Python refuses to read longer integers (and no setting needs one)
_RESOLVER = yaml.resolver.Resolver()
ALLOWED_TAGS = {"tag:yaml.org,2002:str"}  # !!str is how YAML says "keep it text"; no other tag


def read_regular(path: Path, limit: int = MAX_BYTES) -> tuple[str | None, Problem | None]:
    """The text of a regular file of at most `limit` bytes, or why not. Opened without blocking
    (a FIFO) and checked after opening (a symlink to a device), so reading is always bounded."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0))
    except FileNotFoundError:
        return None, Problem(str(path), None, "", "file is missing")
    except OSError as exc:
        return None, Problem(str(path), None, "", f"cannot be read: {exc.strerror or exc}")
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            kind = ("a directory" if stat.S_ISDIR(info.st_mode) else "a FIFO" if stat.S_ISFIFO(info.st_mode)
                    else "a device" if stat.S_ISCHR(info.st_mode) or stat.S_ISBLK(info.st_mode) else "not a file")
            return None, Problem(str(path), None, "", f"is {kind}, not a regular file")
        if info.st_size > limit:
            return None, Problem(str(path), None, "", f"is {info.st_size} bytes; at most {limit} are read")
        data = os.read(fd, limit + 1)
        while len(data) <= limit and (more := os.read(fd, limit + 1 - len(data))):
            data += more
    except OSError as exc:
        return None, Problem(str(path), None, "", f"cannot be read: {exc.strerror or exc}")
    finally:
        os.close(fd)
    if len(data) > limit:
        return None, Problem(str(path), None, "", f"is more than {limit} bytes; at most {limit} are read")
    try:
        return data.decode("utf-8"), None
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        return None, Problem(str(path), line, "", f"is not UTF-8 text (byte {data[exc.start]:#04x})")


def load_yaml(path: Path) -> tuple[YamlDocument | None, list[Problem]]:
    """Parse `path`; on failure return no document and the problems, with their lines.

    Every input ends in data or problems, in bounded time and memory: aliases may not refer to
    themselves nor expand to more than MAX_NODES values, explicit tags other than !!str are
    refused, and whatever constructing a value raises is a problem, not a traceback.
    """
    text, problem = read_regular(path)
    if problem is not None:
        return None, [problem]
    return parse_yaml(path, text)


_TAB_ONLY_LINE = re.compile(r"^[ \t]*\t[ \t]*$", re.MULTILINE)


def parse_yaml(path: Path, text: str) -> tuple[YamlDocument | None, list[Problem]]:
    document, problems = _parse(path, text)
    if document is None and any("tab" in p.message for p in problems) and _TAB_ONLY_LINE.search(text):
        # Editors leave tabs on blank lines; PyYAML refuses them where YAML 1.2 reads a blank line
        # (files written for the original had them). Read such lines as empty, and say so.
        blanked, problems_after = _parse(path, _TAB_ONLY_LINE.sub("", text))
        lines = sorted({text.count("\n", 0, m.start()) + 1 for m in _TAB_ONLY_LINE.finditer(text)})
        warning = Problem(str(path), lines[0], "", "a blank line holds a tab; read as an empty line"
                          + (f" (also lines {', '.join(map(str, lines[1:6]))}{', ...' if len(lines) > 6 else ''})"
                             if len(lines) > 1 else ""), severity="warning")
        # Still refused: then what is left is the real error (lines are unchanged).
        return blanked, [warning] + problems_after
    return document, problems


def _parse(path: Path, text: str) -> tuple[YamlDocument | None, list[Problem]]:
    loader = _Loader(text)
    try:
        try:
            node = loader.get_single_node()
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            line = mark.line + 1 if mark else None
            message = " ".join(part for part in (exc.context, exc.problem) if part)
            return None, [Problem(str(path), line, "", f"YAML syntax error: {message}")]
        except yaml.reader.ReaderError as exc:
            line = text[: exc.position].count("\n") + 1
            character = f"#x{exc.character:04x}" if isinstance(exc.character, int) else repr(exc.character)
            return None, [Problem(str(path), line, "", f"YAML error: unacceptable character {character}: {exc.reason}")]
        except (yaml.YAMLError, ValueError, TypeError, RecursionError) as exc:
            return None, [Problem(str(path), None, "", "YAML error: " + " ".join(str(exc).split()))]
        doc = YamlDocument(path, None)
        problems = _check_nodes(doc, node) if node is not None else []
        if any(p.severity == "error" for p in problems):
            return None, problems
        if node is not None:
            _map_lines(doc, node, (), problems)  # before construction, which flattens merge keys
            try:
                doc.data = loader.construct_document(node)
            except Exception as exc:  # a value YAML's own constructors cannot make: a problem, with why
                mark = getattr(exc, "problem_mark", None)
                line = mark.line + 1 if mark else None
                return None, problems + [Problem(str(path), line, "", "YAML error: cannot read a value: "
                                                 + " ".join(str(exc).split())[:200])]
        return doc, problems
    finally:
        loader.dispose()


def _check_nodes(doc: YamlDocument, root: yaml.Node) -> list[Problem]:
    """Tags, value sizes, self-referencing aliases and how far aliases expand, on the composed
    node graph (before anything is constructed or walked by validation)."""
    problems: list[Problem] = []
    sizes: dict[int, int] = {}
    on_path: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        key = id(node)
        if done:
            on_path.discard(key)
            children = _children(node)
            sizes[key] = 1 + sum(sizes.get(id(c), 0) for c in children)
            if sizes[key] > MAX_NODES:
                return [_at(doc, node, f"more than {MAX_NODES} values (aliases counted as often as they are used) from here on")]
            continue
        if key in sizes:
            continue
        if key in on_path:
            return [_at(doc, node, "an alias refers to a value that contains it (a value cannot contain itself)")]
        if isinstance(node, yaml.ScalarNode):
            if len(node.value) > MAX_SCALAR:
                problems.append(_at(doc, node, f"a value of {len(node.value)} characters (at most {MAX_SCALAR})"))
            elif node.tag == "tag:yaml.org,2002:int" and len(node.value) > MAX_DIGITS:
                problems.append(_at(doc, node, f"a number of {len(node.value)} digits (at most {MAX_DIGITS})"))
            if node.tag not in ALLOWED_TAGS and node.tag != _implicit_tag(node):
                problems.append(_at(doc, node, f"the tag {node.tag.replace('tag:yaml.org,2002:', '!!')} is not "
                                               f"allowed here (write the value plainly, or quote it)"))
            sizes[key] = 1
            continue
        expected = "tag:yaml.org,2002:map" if isinstance(node, yaml.MappingNode) else "tag:yaml.org,2002:seq"
        if node.tag != expected:
            problems.append(_at(doc, node, f"the tag {node.tag.replace('tag:yaml.org,2002:', '!!')} is not allowed here"))
        on_path.add(key)
        stack.append((node, True))
        stack.extend((child, False) for child in _children(node))
    return problems


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def _implicit_tag(node: yaml.ScalarNode) -> str:
    """The tag YAML would give this scalar if none were written."""
    return _RESOLVER.resolve(yaml.ScalarNode, node.value, (node.style in (None, ""), False))  # plain: libyaml says ""


def _key(node: yaml.ScalarNode) -> Any:
    """A mapping key as the constructed data has it (`42:` is the number 42), for line lookups."""
    try:
        if node.tag == "tag:yaml.org,2002:int":
            return int(node.value.replace("_", ""), 0) if node.value[:2] in ("0x", "0o") else int(node.value.replace("_", ""))
        if node.tag == "tag:yaml.org,2002:bool":
            return node.value.lower() in ("yes", "true", "on", "y")
        if node.tag == "tag:yaml.org,2002:null":
            return None
    except ValueError:
        pass
    return node.value


def _at(doc: YamlDocument, node: yaml.Node, message: str) -> Problem:
    return Problem(str(doc.path), node.start_mark.line + 1, "", message)


def _map_lines(doc: YamlDocument, node: yaml.Node, path: tuple, problems: list[Problem]) -> None:
    # Walk iteratively: a generated configuration of thousands of hosts must not recurse deeply.
    # Each node is walked once: an alias's value keeps the lines of where it was written.
    stack = [(node, path)]
    walked: set[int] = set()
    while stack:
        node, path = stack.pop()
        if id(node) in walked:
            continue
        walked.add(id(node))
        if isinstance(node, yaml.MappingNode):
            seen: set = set()
            for key_node, value_node in node.value:
                key = _key(key_node) if isinstance(key_node, yaml.ScalarNode) else None
                if key == "<<" and key_node.tag == "tag:yaml.org,2002:merge":
                    continue  # merged keys may be overridden by the mapping's own
                child = path + (key,)
                line = key_node.start_mark.line + 1
                if key is not None and key in seen:
                    problems.append(
                        Problem(str(doc.path), line, format_path(child), "duplicate key")
                    )
                seen.add(key)
                doc.lines.setdefault(child, line)
                stack.append((value_node, child))
        elif isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                child = path + (index,)
                doc.lines.setdefault(child, item.start_mark.line + 1)
                stack.append((item, child))
