"""The task collection `inv` sees: one namespace per concern."""

from invoke import Collection

from .cluster import tasks as cluster
from .hadoop import tasks as hadoop
from .images import tasks as images
from .k8s import tasks as k8s
from .services import tasks as services
from .testbed import tasks as testbed

namespace = Collection()
for name, module in (
    ("cluster", cluster),
    ("k8s", k8s),
    ("hadoop", hadoop),
    ("services", services),
    ("images", images),
    ("testbed", testbed),
):
    namespace.add_collection(Collection.from_module(module, name=name))
# Invoke reads INVOKE_OPENI_* variables only for keys it already knows: declare every one.
namespace.configure({"openi": {"config_path": None, "connect_timeout": None, "command_timeout": None,
                               "keepalive": None, "concurrency": None}})
