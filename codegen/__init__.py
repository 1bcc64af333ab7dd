"""Code generator: kernel configs, validation, rendering of templates/ into CUDA sources, CLI."""

from . import families  # noqa: F401  (registers the families)
from .config import FAMILIES, InvalidConfig, KernelConfig, config_from_name

__all__ = ["FAMILIES", "InvalidConfig", "KernelConfig", "config_from_name"]
