"""The operator's known_hosts file: which host keys to trust, revoke, or learn on first use.

Read once per run and shared by every connection. OpenSSH's markers are understood: a key under
`@revoked` is refused wherever it is presented; `@cert-authority` lines are skipped with a
warning (paramiko cannot check host certificates), so hosts must also be listed by key.
"""

from __future__ import annotations

import binascii
import hmac
import threading
from pathlib import Path
from typing import TYPE_CHECKING

import paramiko
from paramiko.hostkeys import HostKeyEntry, InvalidHostKey

from .errors import HostKeyError

if TYPE_CHECKING:
    from ..config import Machine


class KnownHosts:
    """Under `strict` a host whose key is not recorded is refused; under `accept-new` its key is
    trusted the first time and appended to the file. A key that differs from the recorded one, or
    that is revoked, is refused under both policies."""

    def __init__(self, path: str, policy: str) -> None:
        self.path = Path(path).expanduser()
        self.policy = policy
        # Indexed by name: paramiko's HostKeys looks up and adds by scanning every entry, which is
        # quadratic in hosts (about 1 s of CPU for 1,000). Hashed names (|1|salt|hash) can only
        # be matched by hashing the name with each entry's salt, so they stay a list.
        self._by_name: dict[str, dict[str, paramiko.PKey]] = {}
        self._hashed: list[tuple[str, paramiko.PKey]] = []
        self.revoked: set[tuple[str, str]] = set()  # (key type, base64)
        self.warnings: list[str] = []
        if self.path.is_file():
            self._load()
        self._lock = threading.Lock()
        self.accepted: list[str] = []

    def _load(self) -> None:
        with open(self.path, encoding="utf-8", errors="replace") as handle:
            for number, raw in enumerate(handle, 1):
                line = raw.strip()
                if not line or line.startswith("#"):
                    continue
                if line.startswith("@"):
                    marker, _, rest = line.partition(" ")
                    fields = rest.split()
                    if marker == "@revoked" and len(fields) >= 3:
                        self.revoked.add((fields[1], fields[2]))
                    elif marker == "@cert-authority":
                        self.warnings.append(f"{self.path}:{number}: @cert-authority is not supported (host "
                                             f"certificates cannot be checked): list the hosts' keys too")
                    else:
                        self.warnings.append(f"{self.path}:{number}: unknown marker {marker}, line ignored")
                    continue
                try:
                    entry = HostKeyEntry.from_line(line, number)
                except (InvalidHostKey, binascii.Error, ValueError, IndexError):
                    entry = None
                if entry is None or entry.key is None:
                    self.warnings.append(f"{self.path}:{number}: not a host key line this tool can read, ignored")
                    continue
                for name in entry.hostnames:
                    self._add(name, entry.key)

    def _add(self, name: str, key: paramiko.PKey) -> None:
        if name.startswith("|1|"):
            self._hashed.append((name, key))
        else:  # a later line for the same name and key type replaces the earlier, as in paramiko
            self._by_name.setdefault(name, {})[key.get_name()] = key

    def lookup(self, name: str) -> dict[str, paramiko.PKey]:
        """The keys recorded for `name`, by key type."""
        found = dict(self._by_name.get(name, {}))
        for hashed, key in self._hashed:
            if hmac.compare_digest(paramiko.HostKeys.hash_host(name, hashed), hashed):
                found.setdefault(key.get_name(), key)
        return found

    @staticmethod
    def entry_name(address: str, port: int) -> str:
        return address if port == 22 else f"[{address}]:{port}"

    def prepare(self, client: paramiko.SSHClient, machine: "Machine") -> None:
        """Give `client` the keys recorded for `machine` (by address, or by host name)."""
        name = self.entry_name(machine.address, machine.port)
        client_keys = client.get_host_keys()
        for alias in (name, self.entry_name(machine.hostname, machine.port)):
            for keytype, key in self.lookup(alias).items():
                if not self.is_revoked(key):
                    client_keys.add(name, keytype, key)
        client.set_missing_host_key_policy(_MissingKey(self, machine))

    def is_revoked(self, key: paramiko.PKey) -> bool:
        return (key.get_name(), key.get_base64()) in self.revoked

    def check_not_revoked(self, key: paramiko.PKey, machine: "Machine") -> None:
        if self.is_revoked(key):
            raise HostKeyError(f"{machine.hostname} ({machine.address}) presented a REVOKED host key "
                               f"({key.get_name()} {key.fingerprint}, @revoked in {self.path}); refusing to connect")

    def accept(self, name: str, key: paramiko.PKey) -> None:
        with self._lock:
            if not self.lookup(name):
                self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
                with open(self.path, "a", encoding="utf-8") as handle:
                    handle.write(f"{name} {key.get_name()} {key.get_base64()}\n")
                self._add(name, key)
                self.accepted.append(f"{name} {key.get_name()} {key.fingerprint}")


class _MissingKey(paramiko.MissingHostKeyPolicy):
    def __init__(self, known: KnownHosts, machine: "Machine") -> None:
        self.known = known
        self.machine = machine

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey) -> None:
        self.known.check_not_revoked(key, self.machine)
        if self.known.policy == "accept-new":
            self.known.accept(hostname, key)
            return
        raise HostKeyError(
            f"host key of {self.machine.hostname} ({hostname}) is not in {self.known.path}: "
            f"verify it and add it (ssh-keyscan -p {self.machine.port} {self.machine.address}), or set "
            f"operator.host-key-policy: accept-new to trust hosts on first use"
        )


