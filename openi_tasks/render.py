"""Rendering: one Jinja2 environment over `templates/`, strict about undefined values.

Every value that reaches a remote shell goes through the `sq` filter (shell quoting); values
placed in YAML go through `tojson` (a JSON string is a valid YAML scalar).
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import jinja2

from .errors import OpenIError

# Installed, the templates are package data (openi_tasks/templates); in a checkout, templates/.
_PACKAGED = Path(__file__).resolve().parent / "templates"
TEMPLATES = _PACKAGED if _PACKAGED.is_dir() else Path(__file__).resolve().parent.parent / "templates"


class TemplateError(OpenIError):
    """A template failed to render: names the template and line."""


def shell_quote(value: Any) -> str:
    """Quote one value for a POSIX shell; lists become space-separated quoted words."""
    if isinstance(value, (list, tuple)):
        return " ".join(shlex.quote(str(v)) for v in value)
    return shlex.quote(str(value))


@lru_cache(maxsize=None)
def environment(root: Path = TEMPLATES) -> jinja2.Environment:
    """The Jinja2 environment for a template root (cached: templates compile once per run)."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(root)),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,
    )
    env.filters["sq"] = shell_quote
    return env


def render(template: str, root: Path = TEMPLATES, **context: Any) -> str:
    """Render one template by its path below the root; errors name the template and line."""
    try:
        return environment(root).get_template(template).render(**context)
    except jinja2.TemplateNotFound as exc:
        raise TemplateError(f"template {exc.name} not found under {root}") from None
    except jinja2.TemplateSyntaxError as exc:
        raise TemplateError(f"{exc.filename or template}:{exc.lineno}: {exc.message}") from None
    except jinja2.UndefinedError as exc:
        raise TemplateError(f"{template}:{_template_line(exc, template)}: {exc.message}") from None


def _template_line(exc: BaseException, template: str) -> str:
    tb = exc.__traceback__
    line = "?"
    while tb is not None:
        if tb.tb_frame.f_code.co_filename.endswith(template):
            line = str(tb.tb_lineno)
        tb = tb.tb_next
    return line


@dataclass(frozen=True)
class RenderedFile:
    """A file as a deploy would write it: absolute target path, content and mode."""

    path: str
    content: str
    mode: int = 0o644

    @property
    def secret(self) -> bool:
        return self.mode & 0o077 == 0


def write_tree(out: Path, files: dict[str, list[RenderedFile]]) -> int:
    """Write `files` (grouped by host, or `_operator`) below `out`, target paths mirrored."""
    count = 0
    for group, rendered in files.items():
        for file in rendered:
            target = out / group / file.path.lstrip("/")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(file.content, encoding="utf-8")
            target.chmod(file.mode)
            count += 1
    return count
