"""Where flashcore_cutlass keeps files that outlive a process."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """``$FLASHCORE_CACHE_DIR``, else ``$XDG_CACHE_HOME/flashcore_cutlass``, else
    ``~/.cache/flashcore_cutlass``. Not created here: callers create what they write."""
    # Empty variables count as unset (the XDG spec says so; it also avoids writing to cwd).
    explicit = os.environ.get("FLASHCORE_CACHE_DIR")
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "flashcore_cutlass"
