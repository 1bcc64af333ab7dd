"""Which built variants may run a problem here, beyond computing it (dtype, head_dim, causal),
and what to say when none may.

* The device: a variant runs only where its compile target and its code allow
  (:func:`flashcore_codegen.arch.runs_on` on the arch and min_cc the extension reports).
* The call: :meth:`KernelConfig.can_implement` (e.g. 16-byte alignment for vector and TMA
  copies), so a misaligned input goes to a family that takes it instead of failing in the op.

The messages name the cause and a fix: which GPU, or which tensors, or which build command.
"""

from __future__ import annotations

from typing import Iterable, NamedTuple

from flashcore_codegen import FAMILIES, KernelConfig, arch
from flashcore_codegen.config import kernel_head_dim


class Target(NamedTuple):
    """What a built variant was compiled for, as the binding reports it."""

    arch: str  # "sm_90a"
    min_cc: int  # 90: major * 10 + minor the code needs

    @classmethod
    def of(cls, config: KernelConfig) -> "Target":
        """The target a config's family compiles for (what a build of it reports)."""
        return cls(config.ARCH, config.MIN_CC)


def runs_on(target: Target, capability: tuple[int, int] | None) -> bool:
    """Does a device of ``capability`` run ``target``? None (no device known: CPU tools) runs all."""
    return capability is None or arch.runs_on(target.arch, target.min_cc, capability)


def computes(config: KernelConfig, problem) -> bool:
    """Does ``config`` compute ``problem`` (a Problem or ProblemKey): its dtype, its causal flag
    (masked variants also run sliding windows), its head dims (its own, or ones that pad to
    it: KernelConfig.computes_head_dim), and a GQA group packed into rows exactly when the
    variant packs (Sm90Config.pack_gqa; problem.gqa_row_packed)?"""
    packs = getattr(config, "pack_gqa", 0) == 1
    return (config.dtype, config.causal) == (problem.dtype, problem.causal) and config.computes_head_dim(
        problem.head_dim, problem.head_dim_v) and packs == (getattr(problem, "group", 1) > 1)


def _space(family: str, problem):
    """The family's configs of the problem's dtype and mask (``computes`` requires both): a
    fraction of the family's space, which for sm90 takes seconds to enumerate."""
    return FAMILIES[family].space(dtype=[problem.dtype], causal=problem.causal)


def family_build_command(problem, families: Iterable[str] = ()) -> str:
    """The CLI command that builds variants of ``families`` (default: the curated set of every
    family) computing ``problem``; ``--all`` when no curated variant of those families does."""
    causal = "--causal" if problem.causal else "--no-causal"
    families = sorted(families)
    curated = not families or any(
        c.is_default() for f in families for c in _space(f, problem) if computes(c, problem) and c.is_valid
    )
    parts = ["flashcore build"] + ([] if curated else ["--all"]) + [f"--family {f}" for f in families]
    # The variant head dim each family runs the call on (e.g. 80 -> 128; 160 -> 192 for sm90, 256 for scalar).
    head_dims = sorted({kernel_head_dim(problem.head_dim, problem.head_dim_v, FAMILIES[f].HEAD_DIMS)
                        for f in families} - {None}) if families else []
    head_dims = head_dims or [kernel_head_dim(problem.head_dim, problem.head_dim_v) or problem.head_dim]
    return " ".join(parts + [f"--dtype {problem.dtype}"] + [f"--head-dim {d}" for d in head_dims] + [causal])


def families_for(problem, capability: tuple[int, int] | None) -> list[str]:
    """Families with a valid variant that computes ``problem``, runs on ``capability`` and can
    implement it: what to build when nothing built can."""
    found = []
    for name, cls in sorted(FAMILIES.items()):
        config = next((c for c in _space(name, problem) if computes(c, problem) and c.is_valid), None)
        if config is not None and runs_on(Target.of(config), capability) and config.can_implement(problem) is None:
            found.append(name)
    return found


def describe_targets(targets: Iterable[Target]) -> str:
    """"sm_90a (compute capability 9.0 only: H100/H200)", for each distinct arch."""
    return ", ".join(sorted({arch.describe(t.arch) for t in targets}))


def _device_fix(capability: tuple[int, int], command: str | None) -> str:
    """How to run when nothing built runs on ``capability``: another GPU, or a build for this one
    (``command``), or, when no family compiles for it, say so."""
    fix = "run on a GPU they were built for (select it with CUDA_VISIBLE_DEVICES or torch.cuda.set_device)"
    if command:
        return f"{fix}, or build variants for this GPU on it: {command}"
    device = arch.capability_name(capability)
    if any(arch.runs_on(cls.ARCH, cls.MIN_CC, capability) for cls in FAMILIES.values()):
        return f"{fix}, or build variants for this GPU on it: flashcore build"
    compiled_for = ", ".join(sorted({cls.ARCH for cls in FAMILIES.values()}))
    return f"{fix}; no kernel family compiles for {device} yet (every family targets {compiled_for})"


def wrong_device_message(problem, targets: Iterable[Target], capability: tuple[int, int]) -> str:
    """Variants compute ``problem`` but none runs on this device (``targets``: theirs)."""
    families = families_for(problem, capability)
    command = family_build_command(problem, families) if families else None
    return (
        f"the built flashcore variants that compute {problem} are for {describe_targets(targets)}, this GPU is"
        f" {arch.capability_name(capability)}: {_device_fix(capability, command)}"
    )


def no_runnable_build_message(where: str, targets: Iterable[Target], capability: tuple[int, int],
                              device_name: str) -> str:
    """Nothing in a build runs on the current device (``targets``: every variant's)."""
    return (
        f"the flashcore extension in {where} holds variants for {describe_targets(targets)}; the current device"
        f" ({device_name}) is {arch.capability_name(capability)}: {_device_fix(capability, None)}"
    )


def cannot_implement_message(problem, reasons: dict[str, str], capability: tuple[int, int] | None) -> str:
    """Variants compute ``problem`` and run here, but each refuses the call (``reasons``: variant
    name -> its can_implement reason)."""
    by_reason: dict[str, set[str]] = {}
    for name, reason in reasons.items():
        by_reason.setdefault(reason, set()).add(name.split("_")[1])
    why = "; ".join(f"{', '.join(sorted(fams))}: {reason}" for reason, fams in sorted(by_reason.items()))
    message = f"no built flashcore variant can run {problem}: {why}. Pass tensors that meet this (e.g. x.contiguous())"
    families = families_for(problem, capability)
    if families:
        message += f", or build a family that takes these inputs: {family_build_command(problem, families)}"
    return message
