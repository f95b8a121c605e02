"""Read one YAML file into plain data plus a map from key paths to line numbers.

The map lets every validation problem name the line it is about. Both come from one
parse with PyYAML's safe loader (libyaml when available), so nothing but plain data
types can be constructed.
"""

from __future__ import annotations

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


def load_yaml(path: Path) -> tuple[YamlDocument | None, list[Problem]]:
    """Parse `path`; on failure return no document and the problem, with its line."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None, [Problem(str(path), None, "", "file is missing")]
    except (OSError, UnicodeDecodeError) as exc:
        return None, [Problem(str(path), None, "", f"cannot be read: {exc}")]
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
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
    finally:
        loader.dispose()
    doc = YamlDocument(path, data)
    problems: list[Problem] = []
    if node is not None:
        _map_lines(doc, node, (), problems)
    return doc, problems


def _map_lines(doc: YamlDocument, node: yaml.Node, path: tuple, problems: list[Problem]) -> None:
    # Walk iteratively: a generated configuration of thousands of hosts must not recurse deeply.
    stack = [(node, path)]
    while stack:
        node, path = stack.pop()
        if isinstance(node, yaml.MappingNode):
            seen: set = set()
            for key_node, value_node in node.value:
                key = key_node.value if isinstance(key_node, yaml.ScalarNode) else None
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
