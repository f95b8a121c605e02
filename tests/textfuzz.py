"""Hostile inputs for the three loaders, made at the level of text and files.

Shared by the property-based tests (tests/test_loader_text_fuzz.py) and the fuzz script
(bench/fuzz_loaders.py). Each mutation starts from a valid file and breaks it the way a mistaken
operator, a bad editor or an attacker would: aliases that explode or refer to themselves, tags,
merge keys, bytes that are not UTF-8 or are terminal escapes, huge numbers and values, deep
nesting, tabs, truncation, and the file itself replaced by a FIFO, a device, a symlink (loop),
a directory or something too big to read.
"""

from __future__ import annotations

import os
import random
import re
from pathlib import Path
from typing import Callable

TEXT_MUTATIONS: dict[str, Callable[[random.Random, str], str]] = {}
FILE_KINDS = ("fifo", "dev-zero", "dev-urandom", "dev-null", "symlink-loop", "dangling-symlink", "directory",
              "too-big", "empty")


def _mutation(function: Callable[[random.Random, str], str]) -> Callable[[random.Random, str], str]:
    TEXT_MUTATIONS[function.__name__.lstrip("_")] = function
    return function


def _lines(text: str) -> list[str]:
    return text.splitlines(keepends=True) or [""]


def _value_line(rng: random.Random, text: str) -> tuple[list[str], int]:
    """The lines, and the index of a line holding `key: value` (or a random line)."""
    lines = _lines(text)
    candidates = [i for i, line in enumerate(lines) if re.match(r"^\s*[-\w. ]+:\s*\S", line)]
    return lines, rng.choice(candidates) if candidates else rng.randrange(len(lines))


def _replace_value(rng: random.Random, text: str, value: str) -> str:
    lines, i = _value_line(rng, text)
    key, sep, _ = lines[i].partition(":")
    lines[i] = f"{key}: {value}\n" if sep else value + "\n"
    return "".join(lines)


@_mutation
def alias_bomb(rng: random.Random, text: str) -> str:
    depth, width = rng.randint(3, 12), rng.randint(2, 10)
    bomb = ["bomb0: &b0 [x, x]\n"] + [
        f"bomb{d}: &b{d} [{', '.join(f'*b{d - 1}' for _ in range(width))}]\n" for d in range(1, depth)]
    return "".join(bomb) + text + f"boom: *b{depth - 1}\n"


@_mutation
def self_alias(rng: random.Random, text: str) -> str:
    return _replace_value(rng, text, rng.choice(["&l [1, *l]", "&m {a: *m}", "&s [[*s]]"]))


@_mutation
def undefined_alias(rng: random.Random, text: str) -> str:
    return _replace_value(rng, text, "*nowhere")


@_mutation
def tag(rng: random.Random, text: str) -> str:
    return _replace_value(rng, text, rng.choice([
        "!!timestamp 2018-01-01", "!!timestamp not-a-date", "!!bool maybe", "!!int abc", "!!float x",
        "!!binary aGVsbG8=", "!!binary '***'", "!!set {a, b}", "!!omap [a: 1]", "!!python/object:os.system x",
        "!!python/name:os.system", "!custom thing", "!!str 42", "!!null ''", "!!map [1]", "!!seq {a: 1}",
    ]))


@_mutation
def merge_key(rng: random.Random, text: str) -> str:
    return ("base: &base {x: 1, y: 2}\n" + text
            + rng.choice(["merged:\n  <<: *base\n  y: 3\n", "merged: {<<: [*base, *base]}\n", "merged:\n  <<: 1\n"]))


@_mutation
def bad_bytes(rng: random.Random, text: str) -> str:
    # Surrogate escapes stand for raw bytes; `write` turns them into those bytes.
    junk = rng.choice(["\udcff\udcfe", "\x00", "\x1b[31mred\x1b[0m", "\x1b]0;title\x07", "\ufeff", "\u202e",
                       "\x85", "\udcc3(", "\x7f", "\u2028"])
    lines, i = _value_line(rng, text)
    position = rng.randint(0, len(lines[i]))
    lines[i] = lines[i][:position] + junk + lines[i][position:]
    return "".join(lines)


@_mutation
def escape_key(rng: random.Random, text: str) -> str:
    return text + f'"\x1b[2J\x1b[31mkey{rng.randint(0, 9)}": value\n'


@_mutation
def huge_number(rng: random.Random, text: str) -> str:
    return _replace_value(rng, text, rng.choice([
        "9" * rng.choice([20, 4300, 100_000]), "1e99999", "-0x" + "f" * 5000, "0o" + "7" * 5000, ".inf", "-.nan",
        "1_000_000", "0b" + "1" * 70]))


@_mutation
def huge_value(rng: random.Random, text: str) -> str:
    return _replace_value(rng, text, "x" * rng.choice([70_000, 1_000_000]))


@_mutation
def deep_nesting(rng: random.Random, text: str) -> str:
    depth = rng.choice([200, 2000, 20000])
    return _replace_value(rng, text, "[" * depth + "]" * depth if rng.random() < 0.5 else "{a: " * depth + "1" + "}" * depth)


@_mutation
def many_keys(rng: random.Random, text: str) -> str:
    return text + "".join(f"k{i}: {i}\n" for i in range(rng.choice([1000, 20000])))


@_mutation
def tab(rng: random.Random, text: str) -> str:
    lines = _lines(text)
    i = rng.randrange(len(lines))
    lines[i] = rng.choice(["\t", "\t\n", " \t \n"]) + lines[i].lstrip(" ") if rng.random() < 0.5 else lines[i] + "\t\n"
    return "".join(lines)


@_mutation
def truncate(rng: random.Random, text: str) -> str:
    return text[: rng.randint(0, len(text))]


@_mutation
def indent(rng: random.Random, text: str) -> str:
    lines = _lines(text)
    i = rng.randrange(len(lines))
    lines[i] = " " * rng.randint(1, 5) + lines[i] if rng.random() < 0.5 else lines[i].lstrip()
    return "".join(lines)


@_mutation
def duplicate_line(rng: random.Random, text: str) -> str:
    lines = _lines(text)
    i = rng.randrange(len(lines))
    lines.insert(i, lines[i])
    return "".join(lines)


@_mutation
def swap_lines(rng: random.Random, text: str) -> str:
    lines = _lines(text)
    i, j = rng.randrange(len(lines)), rng.randrange(len(lines))
    lines[i], lines[j] = lines[j], lines[i]
    return "".join(lines)


@_mutation
def odd_value(rng: random.Random, text: str) -> str:
    return _replace_value(rng, text, rng.choice([
        "", "~", "null", "None", "[]", "{}", "[1, 2]", "{a: b}", "-1", "0", "soon", "yes", "no", "on", "2018-01-01",
        "'/.'", "/datastorage/../", "//etc", "'--env=X'", "'a b'", "$(id)", "`id`", "'; rm -rf /'", "12:30:00",
        "0x1F", "1.0e3", "\"\\u0000\"", "'\\x00'", "\"\\e[31m\"", "999999999999999999999", "!", "&", "*", "|", ">",
        "'", '"', "%TAG", "---", "...", "? complex\n: key"]))


@_mutation
def documents(rng: random.Random, text: str) -> str:
    return rng.choice(["---\n" + text + "---\n" + text, text + "\n...\n", "%YAML 1.1\n---\n" + text,
                       "%YAML 9.9\n---\n" + text])


@_mutation
def random_text(rng: random.Random, text: str) -> str:
    alphabet = ":-[]{}&*!|>'\"%@`#,? \n\tabc123"
    return "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 400)))


@_mutation
def random_bytes(rng: random.Random, text: str) -> str:
    return "".join(chr(0xDC00 + b) if b >= 0x80 else chr(b) for b in rng.randbytes(rng.randint(0, 300)))


def mutate(rng: random.Random, text: str, rounds: int | None = None) -> tuple[str, list[str]]:
    """Apply one to three mutations; the text and the mutations' names."""
    names = []
    for _ in range(rounds or rng.randint(1, 3)):
        name = rng.choice(sorted(TEXT_MUTATIONS))
        text = TEXT_MUTATIONS[name](rng, text)
        names.append(name)
    return text, names


def write(path: Path, text: str) -> None:
    """Write `text`; lone surrogates stand for raw bytes (0xDC00 + b -> b, for b >= 0x80)."""
    path.write_bytes(text.encode("utf-8", errors="surrogateescape"))


def make_hostile_file(path: Path, kind: str) -> None:
    """Put something at `path` that is not a readable regular file of sensible size."""
    if path.is_symlink() or path.is_file():
        path.unlink()
    if kind == "fifo":
        os.mkfifo(path)
    elif kind.startswith("dev-"):
        path.symlink_to("/dev/" + kind[4:])
    elif kind == "symlink-loop":
        path.symlink_to(path.name)
    elif kind == "dangling-symlink":
        path.symlink_to(path.parent / "no-such-file")
    elif kind == "directory":
        path.mkdir()
    elif kind == "too-big":
        with open(path, "wb") as out:
            out.truncate(64 * 2**20)  # sparse: 64 MiB of zero bytes, no disk
    elif kind == "empty":
        path.write_bytes(b"")
    else:
        raise ValueError(kind)


# --- running a loader on one hostile input --------------------------------------------------

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "cluster-configuration"
SERVICE_YAML = ROOT / "templates" / "service.yaml"
CONFIG_FILES = ("cluster-configuration.yaml", "kubernetes-configuration.yaml", "services-configuration.yaml",
                "k8s-role-definition.yaml")
NODES_TEXT = """machine-list:
  - hostname: openi-worker-9
    hostip: 10.10.0.99
    machine-type: NC24R
    k8s-role: worker
    openi-worker: "true"
"""
LOADERS = ("config", "nodes", "service-yaml")


class Hang(Exception):
    """The loader took longer than its time limit."""


def valid_input(loader: str, directory: Path, victim: str = "services-configuration.yaml") -> tuple[Path, Path]:
    """A valid input for `loader` under `directory`: (what to load, the file to break)."""
    import shutil

    if loader == "config":
        target = Path(shutil.copytree(EXAMPLE, directory / "config"))
        return target, target / victim
    if loader == "nodes":
        target = directory / "nodes.yaml"
        target.write_text(NODES_TEXT)
        return target, target
    target = directory / "service.yaml"
    target.write_text(SERVICE_YAML.read_text())
    return target, target


def hostile_input(rng: random.Random, loader: str, directory: Path) -> tuple[Path, str]:
    """Write one hostile input for `loader` under `directory`; (what to load, how it was made)."""
    target, victim = valid_input(loader, directory, rng.choice(CONFIG_FILES))
    if rng.random() < 0.06:
        kind = rng.choice(FILE_KINDS)
        make_hostile_file(victim, kind)
        return target, f"{victim.name}: {kind}"
    text, names = mutate(rng, victim.read_text())
    write(victim, text)
    return target, f"{victim.name}: {'+'.join(names)}"


def load(loader: str, target: Path, cluster=None):
    """Run one loader as the tasks do; what it returns, or the exception it raises."""
    if loader == "config":
        from openi_tasks.config import load_cluster

        return load_cluster(target)
    if loader == "nodes":
        from openi_tasks.config.nodes import load_nodes

        return load_nodes(target, cluster, allow_new=True)
    from openi_tasks.images.catalog import load_images
    from openi_tasks.services.catalog import load_services

    return load_services(target), load_images(target)


CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2028\u2029\ufeff]")


def outcome(loader: str, target: Path, cluster=None, time_limit: int = 10) -> tuple[str, str]:
    """('accepted' | 'exit 2' | 'exit N' | 'traceback' | 'hang' | 'bad message', detail). A clean
    refusal is an OpenIError whose message names the file and holds no control character."""
    import signal

    from openi_tasks.errors import OpenIError

    def alarm(signum, frame):
        raise Hang()

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.alarm(time_limit)
    try:
        load(loader, target, cluster)
        return "accepted", ""
    except Hang:
        return "hang", ""
    except OpenIError as exc:
        message = str(exc)
        if CONTROL.search(message.replace("\n", "")):
            return "bad message", repr(message[:300])
        if target.name not in message and str(target) not in message:
            return "bad message", f"does not name the file: {message[:300]!r}"
        return f"exit {exc.exit_code}", message.splitlines()[0][:200]
    except BaseException as exc:  # noqa: BLE001 - a traceback is what is being counted
        import traceback

        return "traceback", "".join(traceback.format_exception_only(type(exc), exc)).strip()[:300]
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
