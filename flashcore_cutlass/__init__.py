"""flashcore-cutlass: generated CuTe attention kernels for Hopper, dispatched by measured tuning."""

from .api import attention, scaled_dot_product_attention
from .registry import MissingVariantError

__all__ = ["attention", "scaled_dot_product_attention", "MissingVariantError"]
__version__ = "0.1.0"
