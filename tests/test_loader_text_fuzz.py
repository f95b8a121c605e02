"""Property-based, at the level of text and files: every loader (configuration directory, nodes
file, service.yaml) either accepts an input or refuses it cleanly (exit 2, the file named, no
control character printed) in bounded time; never a traceback, never a hang.

The inputs are made by tests/textfuzz.py, which bench/fuzz_loaders.py runs at scale.
"""

from __future__ import annotations

import random
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from openi_tasks.config import load_cluster

from . import textfuzz
from .conftest import EXAMPLE

CLUSTER = load_cluster(EXAMPLE)


@pytest.mark.parametrize("loader", textfuzz.LOADERS)
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(min_value=0, max_value=2**32))
def test_hostile_text_is_accepted_or_refused_cleanly(loader, seed):
    rng = random.Random(seed)
    with tempfile.TemporaryDirectory() as tmp:
        target, how = textfuzz.hostile_input(rng, loader, Path(tmp))
        result, detail = textfuzz.outcome(loader, target, CLUSTER)
    assert result in ("accepted", "exit 2"), f"{how}: {result}: {detail}"


@pytest.mark.parametrize("loader", textfuzz.LOADERS)
@pytest.mark.parametrize("kind", textfuzz.FILE_KINDS)
def test_a_file_that_is_not_a_regular_readable_file_is_refused(loader, kind, tmp_path):
    target, victim = textfuzz.valid_input(loader, tmp_path)
    textfuzz.make_hostile_file(victim, kind)
    result, detail = textfuzz.outcome(loader, target, CLUSTER, time_limit=5)
    assert result == "exit 2", detail
    assert victim.name in detail or loader == "service-yaml", detail


@pytest.mark.parametrize("loader", textfuzz.LOADERS)
@pytest.mark.parametrize("mutation", ["alias_bomb", "self_alias", "tag", "huge_number", "huge_value", "deep_nesting",
                                      "bad_bytes", "escape_key", "many_keys"])
def test_each_kind_of_hostile_text_is_refused_or_read(loader, mutation, tmp_path):
    for seed in range(8):
        rng = random.Random(seed)
        directory = tmp_path / str(seed)
        directory.mkdir()
        target, victim = textfuzz.valid_input(loader, directory)
        textfuzz.write(victim, textfuzz.TEXT_MUTATIONS[mutation](rng, victim.read_text()))
        result, detail = textfuzz.outcome(loader, target, CLUSTER, time_limit=10)
        assert result in ("accepted", "exit 2"), f"{mutation} seed {seed}: {result}: {detail}"
