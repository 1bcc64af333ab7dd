"""Shared by the CPU tests of the experiments kept as patches (benchmarks/experiments/sm90/*.patch): each test applies
its patch to a copy of some of the repository's top-level folders, as the experiment's A/B script applies it to the
tree, so that a source edit which moves the patch's context fails here rather than on the GPU machine."""

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXPERIMENTS = ROOT / "benchmarks" / "experiments" / "sm90"
SM90 = ("templates", "include", "flashcore", "sm90")  # the sm90 headers, under a root
needs_git = pytest.mark.skipif(shutil.which("git") is None, reason="git apply (outside a repository) needs git")


def patched_copy(tmp_path: Path, patch: Path, parts) -> Path:
    """``parts`` (top-level folders) copied under ``tmp_path`` with ``patch`` applied; returns ``tmp_path``."""
    for part in parts:
        shutil.copytree(ROOT / part, tmp_path / part)
    done = subprocess.run(["git", "apply", str(patch)], cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return tmp_path
