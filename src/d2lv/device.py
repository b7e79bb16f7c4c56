"""Which device a step runs on: ``auto`` (the GPU when there is one), ``cpu`` or ``cuda``.

The one place that decides, for every stage that can use a GPU; torch is imported
only when a device is resolved, so importing this module costs nothing.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

DEVICES = ("auto", "cpu", "cuda")


#: Threads torch runs a query's networks with (the detector; the descriptor of a query set), in the workflow and
#: in ``d2lv query`` alike, whatever the machine: convolutions sum in another order on one thread than on
#: several (which agree with each other), so a query's boxes and descriptor would otherwise depend on the
#: cores a job was given.
QUERY_TORCH_THREADS = 2


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"``: CUDA when available, else CPU. A requested but unavailable CUDA
    device falls back to CPU with a warning."""
    import torch

    if isinstance(device, torch.device):
        device = str(device)
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    resolved = torch.device(device)
    if resolved.type == "cuda" and not torch.cuda.is_available():
        warnings.warn(f"device {device!r} requested but CUDA is not available; using the CPU", stacklevel=2)
        return torch.device("cpu")
    return resolved


def faiss_gpus(device: str = "auto") -> int:
    """How many GPUs faiss uses for ``device``: every one it sees for ``auto`` and ``cuda`` (none with a
    CPU-only faiss build), none for ``cpu``. A requested but unavailable GPU falls back to the CPU with a
    warning."""
    if device not in DEVICES:
        raise ValueError(f"unknown device {device!r}; expected one of {DEVICES}")
    if device == "cpu":
        return 0
    import faiss

    count = faiss.get_num_gpus() if hasattr(faiss, "StandardGpuResources") else 0
    if device == "cuda" and count == 0:
        warnings.warn("device 'cuda' requested but faiss sees no GPU (a faiss GPU build is needed); using the CPU",
                      stacklevel=2)
    return count
