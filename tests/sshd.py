"""Real SSH servers for tests: one `sshd` per loopback address (127.0.0.2, 127.0.0.3, ...).

Each server has its own generated host key; the client key and a known_hosts file listing every
server are generated too. A non-root user with a password, allowed to sudo only with that
password, exercises the password path. Needs root (sshd switches users) and openssh-server.
"""

from __future__ import annotations

import secrets
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

SUDO_USER = "openi-sudo"
# A second uid-0 account whose shell is /bin/sh and whose home has no rc files: root on this kind
# of machine may run expensive shell start-up (pyenv) on every command; benchmarks want cheap hosts.
PLAIN_ROOT = "openi-plain-root"
PORT = 2222


def _keygen(path: Path) -> None:
    for old in (path, path.with_name(path.name + ".pub")):
        old.unlink(missing_ok=True)
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "", "-f", str(path)], check=True)


def _wait_port(address: str, port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((address, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"sshd on {address}:{port} did not start")


def ensure_plain_root() -> None:
    if subprocess.run(["id", PLAIN_ROOT], capture_output=True).returncode != 0:
        subprocess.run(["useradd", "-o", "-u", "0", "-g", "0", "-M", "-d", f"/var/lib/{PLAIN_ROOT}",
                        "-s", "/bin/sh", PLAIN_ROOT], check=True)
    # Password "*": no password login, but not "locked" (sshd refuses a locked account's keys too).
    subprocess.run(["usermod", "-p", "*", PLAIN_ROOT], check=True)
    Path(f"/var/lib/{PLAIN_ROOT}").mkdir(mode=0o700, exist_ok=True)


def ensure_sudo_user(password: str) -> None:
    """Create (or reset) the password-and-sudo test user."""
    if subprocess.run(["id", SUDO_USER], capture_output=True).returncode != 0:
        subprocess.run(["useradd", "-m", "-s", "/bin/sh", SUDO_USER], check=True)
    subprocess.run(["chpasswd"], input=f"{SUDO_USER}:{password}\n", text=True, check=True)
    sudoers = Path("/etc/sudoers.d/openi-tests")
    sudoers.write_text(f"{SUDO_USER} ALL=(ALL:ALL) ALL\nDefaults:{SUDO_USER} !lecture\n")
    sudoers.chmod(0o440)


@dataclass
class SshHosts:
    """Several sshd servers on loopback addresses, and what a client needs to reach them."""

    workdir: Path
    count: int
    port: int = PORT
    first: int = 2
    sudo_password: str = field(default_factory=lambda: "pw-" + secrets.token_hex(8))
    processes: list[subprocess.Popen] = field(default_factory=list)

    @property
    def addresses(self) -> list[str]:
        return [f"127.0.0.{self.first + i}" for i in range(self.count)]

    @property
    def client_key(self) -> Path:
        return self.workdir / "client_key"

    @property
    def known_hosts(self) -> Path:
        return self.workdir / "known_hosts"

    def start(self) -> "SshHosts":
        sshd = shutil.which("sshd") or "/usr/sbin/sshd"
        self.workdir.mkdir(parents=True, exist_ok=True)
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
        _keygen(self.client_key)
        authorized = self.workdir / "authorized_keys"
        authorized.write_text((self.workdir / "client_key.pub").read_text())
        ensure_sudo_user(self.sudo_password)
        home = Path(f"~{SUDO_USER}").expanduser() / ".ssh"
        home.mkdir(mode=0o700, exist_ok=True)
        (home / "authorized_keys").write_text(authorized.read_text())
        shutil.chown(home, SUDO_USER)
        shutil.chown(home / "authorized_keys", SUDO_USER)
        known = []
        for address in self.addresses:
            host_key = self.workdir / f"host_{address}"
            _keygen(host_key)
            known.append(f"[{address}]:{self.port} {(self.workdir / f'host_{address}.pub').read_text().strip()}")
            config = self.workdir / f"sshd_{address}.conf"
            config.write_text(
                f"ListenAddress {address}:{self.port}\n"
                f"HostKey {host_key}\n"
                f"PidFile {self.workdir}/sshd_{address}.pid\n"
                f"AuthorizedKeysFile {authorized} .ssh/authorized_keys\n"
                "StrictModes no\nUsePAM no\nPermitRootLogin prohibit-password\n"
                "PasswordAuthentication yes\nKbdInteractiveAuthentication no\n"
                "Subsystem sftp internal-sftp\nMaxStartups 500\nMaxSessions 100\nLogLevel ERROR\n"
            )
            self.processes.append(subprocess.Popen([sshd, "-D", "-e", "-f", str(config)], stderr=subprocess.DEVNULL))
        self.known_hosts.write_text("\n".join(known) + "\n")
        for address in self.addresses:
            _wait_port(address, self.port)
        return self

    def stop(self) -> None:
        for process in self.processes:
            process.terminate()
        for process in self.processes:
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
        self.processes.clear()

    def machines(self) -> list[dict]:
        """machine-list entries for every server: the first a master, the others workers."""
        entries = []
        for i, address in enumerate(self.addresses):
            entry = {"hostname": f"node{i + 1}", "hostip": address, "machine-type": "standard"}
            entry.update({"k8s-role": "master", "etcdid": "etcd1"} if i == 0 else {"k8s-role": "worker"})
            entries.append(entry)
        return entries

    def operator(self, **extra) -> dict:
        return {"known-hosts": str(self.known_hosts), "host-key-policy": "strict", **extra}

    def defaults(self, user: str = "root") -> dict:
        if user == PLAIN_ROOT:
            ensure_plain_root()
        return {"username": user, "sshport": self.port, "ssh-key": str(self.client_key)}


def count_sessions(host) -> list[int]:
    """Counts the SSH sessions the host opens from now on."""
    host.open()
    transport = host.transport
    opened = [0]
    open_session = transport.open_session

    def counting(*args, **kwargs):
        opened[0] += 1
        return open_session(*args, **kwargs)

    transport.open_session = counting
    return opened
