"""The environment a measurement was taken in.

A tuned result is trusted only in the environment that produced it: a different GPU, SM
count (e.g. a MIG slice), CUDA, torch or CUTLASS can change which variant wins. cuDNN is
deliberately not part of the identity: our kernels do not use it, so a cuDNN upgrade must
not invalidate the table.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
from dataclasses import dataclass


def gpu_label(gpu_name: str, sm_count: int) -> str:
    """How a GPU is named where rows of several GPUs meet: "NVIDIA H200 (132 SMs)"."""
    return f"{gpu_name} ({sm_count} SMs)"


@dataclass(frozen=True)
class Environment:
    gpu_name: str
    sm_count: int
    cuda: str
    torch: str
    cutlass: str

    @classmethod
    def current(cls, device=None) -> "Environment":
        """The environment of ``device`` (default: the current CUDA device).

        Raises whatever torch raises when there is no CUDA device.
        """
        import torch  # lazy: the table and registry are usable (and testable) without it

        if device is None:
            device = torch.cuda.current_device()
        props = torch.cuda.get_device_properties(device)
        return cls(
            gpu_name=props.name,
            sm_count=int(props.multi_processor_count),
            cuda=str(torch.version.cuda),  # "None" on a CPU-only torch build
            torch=torch.__version__,
            cutlass=_cutlass_version(),
        )

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


def _cutlass_version() -> str:
    try:
        return importlib.metadata.version("nvidia-cutlass")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"
