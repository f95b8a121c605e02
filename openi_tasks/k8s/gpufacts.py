"""A host's GPUs, as facts sees them, compared with its machine type's `gpu` entry.

nvidia-smi, when the host has it, gives each GPU's model and the driver's version. Without it
(no driver installed yet: the `drivers` service installs one) the NVIDIA display and 3D
controllers on the PCI bus are counted from sysfs, so a missing or extra GPU is caught before a
driver exists. An nvidia-smi that fails (a driver that does not work) is reported, and the PCI
count is used.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..config import Machine

# The shell lines the facts script runs: `gpu.N=<model>, <driver>` per GPU, and where they came from.
SCRIPT = r"""
pci_gpus() {
  n=0
  for d in /sys/bus/pci/devices/*; do
    [ "$(cat "$d/vendor" 2>/dev/null)" = 0x10de ] || continue
    case "$(cat "$d/class" 2>/dev/null)" in
      0x0300*|0x0302*) n=$((n + 1)); echo "gpu.$n=NVIDIA PCI device $(cat "$d/device" 2>/dev/null), " ;;
    esac
  done
}
if command -v nvidia-smi >/dev/null 2>&1; then
  if smi=$(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>&1); then
    echo "gpu_source=nvidia-smi"
    printf '%s\n' "$smi" | grep . | awk '{print "gpu." NR "=" $0}'
  else
    echo "gpu_source=pci"
    echo "gpu_error=nvidia-smi failed: $(printf '%s' "$smi" | head -n 1)"
    pci_gpus
  fi
else
  echo "gpu_source=pci"
  pci_gpus
fi
"""


@dataclass(frozen=True)
class GpuFacts:
    source: str  # "nvidia-smi" or "pci"
    models: tuple[str, ...] = ()
    driver: str = ""  # the driver's version, when nvidia-smi answered
    error: str = ""  # why nvidia-smi could not be used

    @property
    def count(self) -> int:
        return len(self.models)


def parse(raw: dict[str, str]) -> GpuFacts:
    """From the facts script's `key=value` lines."""
    numbered = sorted((int(k[4:]), v) for k, v in raw.items() if re.fullmatch(r"gpu\.\d+", k))
    models, drivers = [], set()
    for _, value in numbered:
        model, _, driver = value.rpartition(",")
        models.append(model.strip() or value.strip())
        if driver.strip():
            drivers.add(driver.strip())
    return GpuFacts(source=raw.get("gpu_source", "pci").strip(), models=tuple(models),
                    driver=", ".join(sorted(drivers)), error=raw.get("gpu_error", "").strip())


def _squashed(text: str) -> str:
    return re.sub(r"[^a-z0-9]", "", text.lower())


def mismatch(machine: Machine, gpus: GpuFacts) -> str:
    """Why the host's GPUs are not what its machine type says ("" when they are): the count must
    match; the type must be part of each model's name, spaces and case aside (teslak80 in
    "Tesla K80"). The PCI bus does not name models, so only the count is compared then."""
    sku = machine.sku.gpu
    expected = machine.gpu_count
    where = f"machine type {machine.sku_name}"
    found = f"{gpus.count} found by {gpus.source}" + (f" ({gpus.error})" if gpus.error else "")
    if gpus.count != expected:
        return f"{where} says {expected} GPU{'s' if expected != 1 else ''}, {found}"
    if sku and expected and gpus.source == "nvidia-smi":
        other = sorted({m for m in gpus.models if _squashed(sku.type) not in _squashed(m)})
        if other:
            return f"{where} says {sku.type}, nvidia-smi reports {', '.join(other)}"
    return ""
