"""Property-based: malformed configuration directories always give a clean error.

Hypothesis mutates the bundled example (delete keys, replace values with arbitrary YAML values,
add and rename keys, replace whole files with arbitrary text). Whatever it produces, the loader
must either return a cluster or raise `ConfigError` whose every problem names a file of the
directory — never another exception — and no secret may appear in the message.
"""

from __future__ import annotations

import copy
import tempfile
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from openi_tasks.config import Cluster, load_cluster
from openi_tasks.config.files import FILES
from openi_tasks.errors import ConfigError

from .conftest import EXAMPLE

SECRETS = {
    ("cluster-configuration.yaml", ("default-machine-properties", "password")): "S3CRET-ssh-7f3a",
    ("services-configuration.yaml", ("cluster", "docker-registry-info", "docker-password")): "S3CRET-registry-91c2",
    ("services-configuration.yaml", ("restserver", "jwt-secret")): "S3CRET-jwt-55d0",
    ("services-configuration.yaml", ("restserver", "default-pai-admin-password")): "S3CRET-admin-0e4b",
}


def _example() -> dict[str, Any]:
    data = {name: yaml.safe_load((EXAMPLE / name).read_text()) for name in FILES}
    for (name, path), secret in SECRETS.items():
        node = data[name]
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = secret
    return data


EXAMPLE_DATA = _example()

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
    st.sampled_from(["10.0.0.1", "300.1.1.1", "10.0.0.0/8", "master", "proxy", "None", "", "-", "~/x", "/"]),
)
values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=3), st.dictionaries(st.text(max_size=12), children, max_size=3)
    ),
    max_leaves=6,
)


def _containers(node: Any, path: tuple = ()) -> list[tuple]:
    """Every (path) of a dict or list in the tree, the root included."""
    found = []
    if isinstance(node, (dict, list)):
        found.append(path)
        items = node.items() if isinstance(node, dict) else enumerate(node)
        for key, child in items:
            found += _containers(child, path + (key,))
    return found


def _at(node: Any, path: tuple) -> Any:
    for key in path:
        node = node[key]
    return node


@st.composite
def mutated_directories(draw) -> dict[str, Any]:
    """The example's four files as data or text, after a few random mutations."""
    files: dict[str, Any] = copy.deepcopy(EXAMPLE_DATA)
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        name = draw(st.sampled_from(sorted(files)))
        if draw(st.integers(0, 9)) == 0:
            files[name] = draw(st.one_of(st.text(max_size=200), st.binary(max_size=100)))
            continue
        if not isinstance(files[name], (dict, list)):
            continue
        container = _at(files[name], draw(st.sampled_from(_containers(files[name]))))
        action = draw(st.sampled_from(["replace", "delete", "add", "rename"]))
        keys = list(container.keys()) if isinstance(container, dict) else list(range(len(container)))
        if action == "add" or not keys:
            if isinstance(container, dict):
                container[draw(st.text(min_size=1, max_size=15))] = draw(values)
            else:
                container.append(draw(values))
            continue
        key = draw(st.sampled_from(keys))
        if action == "replace":
            container[key] = draw(values)
        elif action == "delete":
            del container[key]
        elif isinstance(container, dict):
            new_key = draw(st.text(min_size=1, max_size=15).filter(lambda k: k not in container))
            container[new_key] = container.pop(key)
    return files


def _write(directory: Path, files: dict[str, Any]) -> None:
    for name, content in files.items():
        path = directory / name
        if isinstance(content, bytes):
            path.write_bytes(content)
        elif isinstance(content, str):
            path.write_text(content, encoding="utf-8", errors="surrogatepass") if _encodable(content) else path.write_bytes(b"\xff")
        else:
            path.write_text(yaml.safe_dump(content, allow_unicode=True), encoding="utf-8")


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
        return True
    except UnicodeEncodeError:
        return False


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_directories())
def test_malformed_directories_give_a_clean_error(files):
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        _write(directory, files)
        try:
            result = load_cluster(directory)
        except ConfigError as error:
            assert error.problems, "a ConfigError must carry its problems"
            errors = [p for p in error.problems if p.severity == "error"]
            assert errors, "a ConfigError must carry at least one error"
            for problem in error.problems:
                assert Path(problem.file).parent == directory or Path(problem.file) == directory
                assert problem.message and "\n" not in problem.message
                assert problem.line is None or problem.line >= 1
            message = str(error)
            for secret in SECRETS.values():
                assert secret not in message
        else:
            assert isinstance(result, Cluster)
            assert result.masters and result.endpoint.address


def test_the_unmutated_example_with_secrets_loads():
    with tempfile.TemporaryDirectory() as tmp:
        _write(Path(tmp), copy.deepcopy(EXAMPLE_DATA))
        cluster = load_cluster(tmp)
        assert cluster.by_name["openi-master-1"].password.get_secret_value() == "S3CRET-ssh-7f3a"
        assert "S3CRET" not in repr(cluster)
