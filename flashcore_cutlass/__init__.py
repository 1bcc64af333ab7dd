"""flashcore-cutlass: generated CuTe attention kernels for Hopper, dispatched by measured tuning.

The public names are imported lazily, so that the command line (``flashcore``), the build and
the tuning table work, and start fast, without importing torch.
"""

from importlib import import_module

__version__ = "0.1.0"
__all__ = ["attention", "attention_varlen", "scaled_dot_product_attention", "patch_sdpa", "SdpaPatch", "MissingVariantError"]

_LAZY = {
    "attention": ".api",
    "scaled_dot_product_attention": ".api",
    "attention_varlen": ".varlen",
    "patch_sdpa": ".patch",
    "SdpaPatch": ".patch",
    "MissingVariantError": ".registry",
}


def __getattr__(name):
    if name in _LAZY:
        value = getattr(import_module(_LAZY[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + __all__)
