"""Load a configuration directory's files into their models, collecting every problem."""

from __future__ import annotations

import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import AliasChoices, BaseModel, ValidationError

from .files import FILES, LEGACY_KUBERNETES_KEYS
from .problems import Problem, did_you_mean
from .yamlfile import YamlDocument, load_yaml


@dataclass
class LoadedFiles:
    """The four files as parsed (for raw checks and line lookups) and those valid on their own."""

    docs: dict[str, YamlDocument] = field(default_factory=dict)
    models: dict[str, BaseModel] = field(default_factory=dict)

    @property
    def complete(self) -> bool:
        return len(self.models) == len(FILES)

    def raw(self, name: str) -> dict:
        """A file's data as parsed, or {} when it is missing or not a mapping."""
        doc = self.docs.get(name)
        return doc.data if doc is not None and isinstance(doc.data, dict) else {}


def load_files(directory: Path) -> tuple[LoadedFiles, list[Problem]]:
    """Parse and validate each file on its own, collecting every problem."""
    files = LoadedFiles()
    if not directory.is_dir():
        return files, [Problem(str(directory), None, "", "is not a directory")]
    problems: list[Problem] = []
    for name, model_cls in FILES.items():
        doc, found = load_yaml(directory / name)
        problems += found
        if doc is None:
            continue
        files.docs[name] = doc
        model, found = validate_document(doc, model_cls)
        problems += found
        if model is not None:
            files.models[name] = model
    if "kubernetes-configuration.yaml" in files.docs:
        problems += _legacy_warnings(files.docs["kubernetes-configuration.yaml"])
    if "services-configuration.yaml" in files.docs:
        problems += _moved_device_plugin(files.docs["services-configuration.yaml"])
    return files, problems


def validate_document(doc: YamlDocument, model_cls: type[BaseModel]) -> tuple[Any, list[Problem]]:
    """Validate one document against its model; unknown keys and pydantic's errors, with lines."""
    if doc.data is None:
        return None, [doc.problem((), "file is empty")]
    if not isinstance(doc.data, dict):
        return None, [doc.problem((), f"must be a mapping of keys, not a {_kind(doc.data)}")]
    problems = unknown_keys(doc, model_cls, doc.data, ())
    try:
        model = model_cls.model_validate(doc.data)
    except ValidationError as exc:
        problems += [_from_pydantic(doc, error) for error in exc.errors(include_url=False)
                     if error["type"] != "extra_forbidden"]
        return None, problems
    return (None if problems else model), problems


def unknown_keys(doc: YamlDocument, model_cls: type[BaseModel], data: Any, path: tuple) -> list[Problem]:
    """Keys the model does not know: an error in closed sections; in open ones, only likely typos."""
    if not isinstance(data, dict):
        return []
    fields = field_names(model_cls)
    open_section = model_cls.model_config.get("extra") == "allow"
    problems = []
    for key, value in data.items():
        if key in fields:
            problems += _walk(doc, fields[key], value, path + (key,))
            continue
        hint = did_you_mean(key, fields)
        if not open_section:
            problems.append(doc.problem(path + (key,), f"unknown key{hint}"))
        elif hint:
            problems.append(doc.problem(path + (key,), f"unknown key{hint}"))
    return problems


def field_names(model_cls: type[BaseModel]) -> dict[str, Any]:
    """Every key spelling a model accepts, mapped to that field's type."""
    names = {}
    for name, info in model_cls.model_fields.items():
        if isinstance(info.validation_alias, AliasChoices):
            spellings = [c for c in info.validation_alias.choices if isinstance(c, str)]
        else:
            spellings = [info.alias or name]
        for spelling in spellings:
            names[spelling] = info.annotation
    return names


def _walk(doc: YamlDocument, annotation: Any, value: Any, path: tuple) -> list[Problem]:
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Annotated:
        return _walk(doc, args[0], value, path)
    if origin is typing.Union:
        return [p for arg in args if arg is not type(None) for p in _walk(doc, arg, value, path)]
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return unknown_keys(doc, annotation, value, path)
    if origin is dict and isinstance(value, dict):
        return [p for key, item in value.items() for p in _walk(doc, args[1], item, path + (key,))]
    if origin is list and isinstance(value, list):
        return [p for i, item in enumerate(value) for p in _walk(doc, args[0], item, path + (i,))]
    return []


_MESSAGES = {
    "missing": "required key is missing",
    "string_type": "must be a string (quote it in YAML)",
    "int_type": "must be a whole number",
    "int_parsing": "must be a whole number",
    "int_from_float": "must be a whole number",
    "float_type": "must be a number",
    "float_parsing": "must be a number",
    "finite_number": "must be a finite number",
    "dict_type": "must be a mapping of keys",
    "model_type": "must be a mapping of keys",
    "model_attributes_type": "must be a mapping of keys",
    "list_type": "must be a list",
    "ip_any_address": "is not a valid IP address",
}


def _from_pydantic(doc: YamlDocument, error: dict) -> Problem:
    loc = tuple(error["loc"])
    kind = error["type"]
    if "[key]" in loc:
        loc = loc[: loc.index("[key]")]
        message = "invalid key: " + _clean(error["msg"])
    elif kind in _MESSAGES:
        message = _MESSAGES[kind]
    elif kind == "literal_error":
        expected = error.get("ctx", {}).get("expected", "")
        value = error.get("input")
        choices = [c.strip(" '") for c in expected.replace(" or ", ",").split(",") if c.strip()]
        message = f"must be one of {expected}{did_you_mean(value, choices)}"
    elif kind in ("greater_than_equal", "less_than_equal", "greater_than", "less_than"):
        message = "must be " + error["msg"].replace("Input should be ", "")
    else:
        message = _clean(error["msg"])
    return doc.problem(loc, message)


def _clean(msg: str) -> str:
    for prefix in ("Value error, ", "Assertion failed, "):
        if msg.startswith(prefix):
            msg = msg[len(prefix):]
    return msg[:1].lower() + msg[1:]


def _legacy_warnings(doc: YamlDocument) -> list[Problem]:
    block = doc.data.get("kubernetes") if isinstance(doc.data, dict) else None
    if not isinstance(block, dict):
        return []
    return [
        doc.problem(
            ("kubernetes", key),
            "is from the hyperkube era and is ignored; kubeadm deploys every control-plane "
            "component at kubernetes-version",
            severity="warning",
        )
        for key in LEGACY_KUBERNETES_KEYS
        if key in block
    ]


def _moved_device_plugin(doc: YamlDocument) -> list[Problem]:
    images = doc.data.get("images") if isinstance(doc.data, dict) else None
    if not (isinstance(images, dict) and "nvidia-device-plugin" in images):
        return []
    return [doc.problem(("images", "nvidia-device-plugin"),
                        "is ignored: the device plugin is now an add-on of k8s.deploy, whose image is "
                        "kubernetes.nvidia-device-plugin-image in kubernetes-configuration.yaml", severity="warning")]


def _kind(value: Any) -> str:
    return {list: "list", str: "string", int: "number", float: "number", bool: "boolean"}.get(
        type(value), type(value).__name__
    )
