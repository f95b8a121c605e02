"""The SSH layer: one module per concern.

- `known_hosts`: which host keys are trusted, revoked, or learned on first use;
- `host`: a connection to one machine, its commands (`sh`), batches (`sh_all`) and file writes;
- `channel`: one command on one channel, read without threads, with keepalive and Ctrl-C;
- `batch`: the script and parsing behind `sh_all`, and `FileWrite`;
- `fanout`: bounded work on many hosts at once;
- `inventory`: the run's hosts, by role;
- `errors`: what can go wrong, in words an operator can act on.
"""

from .batch import FileWrite
from .errors import Cancelled, CommandFailed, CommandTimeout, ConnectionLost, HostKeyError, describe_error
from .fanout import fan_out
from .host import Host
from .inventory import Inventory
from .known_hosts import KnownHosts

__all__ = ["Cancelled", "CommandFailed", "CommandTimeout", "ConnectionLost", "FileWrite", "Host", "HostKeyError",
           "Inventory", "KnownHosts", "describe_error", "fan_out"]
