"""Kernel configurations: the single source of truth for every generated variant.

A config is a frozen dataclass. Its ``name`` is the generated file's stem, the C++ symbol,
the registry key and the tuning-table key, and it can be parsed back with
:func:`config_from_name`. A kernel family is one subclass here (plus one template): it
declares its tile axes as dataclass fields with an ``abbr`` for the name, the values each
axis may take (``AXES``) and its own validation rules. It also owns how it is compiled and
what it needs at run time: its compile target (``ARCH``, ``MIN_CC``), nvcc flags
(``NVCC_FLAGS``), the headers its sources include (``HEADERS``, hashed into its variants'
source hashes) and which calls it can run (:meth:`KernelConfig.can_implement`).
"""

from __future__ import annotations

import dataclasses
import itertools
from dataclasses import dataclass, field
from typing import ClassVar, Iterable, Iterator

from . import arch
from .toolchain import nvcc_flags

DTYPES = ("fp16", "bf16")
# A family's head dims unless it declares others (KernelConfig.HEAD_DIMS; all_head_dims: every family's).
FAMILY_HEAD_DIMS = (64, 128, 256)
DTYPE_BYTES = {"fp16": 2, "bf16": 2}
# cutlass element type per dtype.
CUTLASS_ELEMENT = {"fp16": "cutlass::half_t", "bf16": "cutlass::bfloat16_t"}

# H100 (sm_90): opt-in dynamic shared memory per block, and registers per thread.
SMEM_LIMIT_BYTES = 227 * 1024
MAX_THREADS_PER_BLOCK = 1024
# fp32 accumulators a thread may hold (O and S tiles) before ptxas starts spilling, for a family
# without a model of its own: the remaining ~60 of the 255 registers go to addresses, softmax
# state and operands. Families with other register files (setmaxnreg) override register_budget().
ACCUMULATOR_REGISTER_BUDGET = 192

FAMILIES: dict[str, type["KernelConfig"]] = {}

ALIGNED16_REASON = "needs 16-byte aligned q/k/v with strides that are multiples of 16 bytes"


def tile(abbr: str, doc: str, default=dataclasses.MISSING, spell_default: bool = True):
    """A tile axis: a dataclass field whose value appears in the name as ``<abbr><value>``.

    ``default`` is for axes added after the others (the name still spells the value unless
    ``spell_default`` is False: then a trailing axis at its default leaves the name as it was
    before the axis existed, so tuned rows and scripts naming those variants stay valid)."""
    return field(default=default, metadata={"abbr": abbr, "doc": doc, "spell_default": spell_default})


@dataclass(frozen=True)
class KernelConfig:
    """Fields shared by every family: what problem a variant computes."""

    dtype: str
    head_dim: int
    causal: bool

    family: ClassVar[str] = ""
    # Position on the roadmap's ladder (higher = later step); the heuristic prefers higher.
    ladder_step: ClassVar[int] = 0
    # Values each tile axis may take when enumerating the space.
    AXES: ClassVar[dict[str, tuple[int, ...]]] = {}
    # Axes whose values other than their default combine only with fixed values of other axes
    # (every other combination is invalid): axis -> {other axis: its value}. The space enumerates
    # their other values only there, so such an axis adds its few valid configs instead of
    # multiplying the space (whose size every enumeration pays).
    AXIS_SCOPES: ClassVar[dict[str, dict[str, int]]] = {}
    # The curated default set: tile tuples (in tile-field order) per head dim, and the
    # (dtype, head_dim, causal) problems they are built for (None: every problem).
    DEFAULT_TILES: ClassVar[dict[int, list[tuple[int, ...]]]] = {}
    DEFAULT_PROBLEMS: ClassVar[frozenset | None] = None
    # Problems that get every DEFAULT_TILES tile of their head dim; the others get only the first
    # (None: every problem gets every tile). Keeps a family that wins nothing on its own device
    # built for every problem while bounding its build time.
    DEFAULT_ALL_TILES_FOR: ClassVar[frozenset | None] = None
    # DEFAULT_TILES entries built for one mask only: (head_dim, tile tuple as listed) -> the causal
    # value of the problems that get it (e.g. tiles that win only non-causal keys, or only causal ones).
    DEFAULT_MASK_ONLY: ClassVar[dict[tuple, bool]] = {}
    # Default variants allowed to spill registers: name glob -> the measurement that keeps them
    # (`flashcore build` warns about any other spill).
    MEASURED_SPILLS: ClassVar[dict[str, str]] = {}
    # Per head dim, tile sizes the registry's heuristic should aim at instead of its generic ones
    # (flashcore_cutlass.registry.PREFERRED_TILES), for untuned shapes; each with its measurement.
    # A family whose preferences depend on the problem overrides heuristic_tiles.
    HEURISTIC_TILES: ClassVar[dict[int, dict[str, int]]] = {}
    # Seconds to compile one variant on one core (measured; `flashcore build --dry-run` estimates from it).
    BUILD_SECONDS: ClassVar[float] = 60.0

    # -- compilation (see flashcore_codegen.arch) -------------------------------------------
    # What nvcc compiles the family for, and the compute capability (major * 10 + minor) its
    # code needs; a device must run both (arch.runs_on). sm_90a for every family today.
    ARCH: ClassVar[str] = "sm_90a"
    MIN_CC: ClassVar[int] = 90
    # The family's nvcc flags: the common ones and the cubin for ARCH (checked at class creation).
    NVCC_FLAGS: ClassVar[tuple[str, ...]] = nvcc_flags("sm_90a")
    # Glob patterns, relative to templates/include ("**" spans directories), of every header the
    # family's sources include: their contents go into its source hashes, others' do not. The
    # default (every header) is safe for a family that declares nothing.
    HEADERS: ClassVar[tuple[str, ...]] = ("flashcore/**",)

    # -- run time -------------------------------------------------------------------------
    # Whether the family's template defines <name>_can_implement / <name>_workspace_bytes
    # (registered with the binding through VariantInfo, see templates/common/register.cu.j2).
    DEFINES_CAN_IMPLEMENT: ClassVar[bool] = False
    DEFINES_WORKSPACE_BYTES: ClassVar[bool] = False
    # The kernels move 16-byte vectors (cp.async, TMA): every base pointer 16-byte aligned and
    # every stride a multiple of 16 bytes. Dispatch skips the family for other inputs.
    REQUIRES_ALIGNED16: ClassVar[bool] = False
    # The kernels zero-fill head-dim columns past the call's (a multiple of 8): a variant then
    # runs every head dim above the family's next smaller head dim up to its own (computes_head_dim).
    PADS_HEAD_DIM: ClassVar[bool] = False
    # The head dims the family's variants are built for.
    HEAD_DIMS: ClassVar[tuple[int, ...]] = FAMILY_HEAD_DIMS
    # The kernels honour FwdParams::programmatic_launch (PDL: launched as programmatic dependents,
    # they wait for the previous kernel's results before touching global memory).
    PROGRAMMATIC_LAUNCH: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if cls.family:
            if cls.family in FAMILIES:
                raise TypeError(f"kernel family {cls.family!r} defined twice")
            gencode = arch.gencode_flag(cls.ARCH)
            if gencode not in cls.NVCC_FLAGS:
                raise TypeError(
                    f"kernel family {cls.family!r} compiles for {cls.ARCH} but its NVCC_FLAGS lack {gencode}:"
                    f" set NVCC_FLAGS = nvcc_flags({cls.ARCH!r}, ...)"
                )
            spelled = [f.metadata["spell_default"] for f in cls.tile_fields()]
            if any(spelled[i] and not spelled[i - 1] for i in range(1, len(spelled))):
                raise TypeError(f"kernel family {cls.family!r}: only trailing tile axes may leave their default "
                                "out of the name (spell_default=False)")
            FAMILIES[cls.family] = cls

    # -- naming ---------------------------------------------------------------------
    @classmethod
    def tile_fields(cls) -> tuple[dataclasses.Field, ...]:
        return tuple(f for f in dataclasses.fields(cls) if "abbr" in f.metadata)

    @property
    def name(self) -> str:
        mask = "causal" if self.causal else "full"
        tiles = "_".join(f"{f.metadata['abbr']}{getattr(self, f.name)}" for f in self.tile_fields()
                         if f.metadata["spell_default"] or getattr(self, f.name) != f.default)
        return f"fc_{self.family}_{self.dtype}_d{self.head_dim}_{mask}_{tiles}"

    @property
    def template(self) -> str:
        return f"{self.family}.cu.j2"

    @classmethod
    def default_tiles(cls, head_dim: int, causal: bool) -> list[tuple]:
        """The DEFAULT_TILES tuples (as listed) of a head dim that problems of this mask get
        (DEFAULT_MASK_ONLY restricts some to one mask)."""
        return [tuple(t) for t in cls.DEFAULT_TILES.get(head_dim, [])
                if cls.DEFAULT_MASK_ONLY.get((head_dim, tuple(t)), causal) == causal]

    @classmethod
    def problem_defaults(cls, dtype: str, head_dim: int, causal: bool) -> list["KernelConfig"]:
        """The default set's configs for one (dtype, head_dim, causal) problem, as DEFAULT_TILES lists
        them (not validated): every listed tile, only the first outside DEFAULT_ALL_TILES_FOR, none
        outside DEFAULT_PROBLEMS."""
        if cls.DEFAULT_PROBLEMS is not None and (dtype, head_dim, causal) not in cls.DEFAULT_PROBLEMS:
            return []
        fields = cls.tile_fields()
        # A listed tuple may stop before axes added later: those take their defaults.
        listed = [tuple(t) + tuple(f.default for f in fields[len(t):]) for t in cls.default_tiles(head_dim, causal)]
        if cls.DEFAULT_ALL_TILES_FOR is not None and (dtype, head_dim, causal) not in cls.DEFAULT_ALL_TILES_FOR:
            listed = listed[:1]
        return [cls(dtype=dtype, head_dim=head_dim, causal=causal, **{f.name: v for f, v in zip(fields, t)})
                for t in listed]

    def is_default(self) -> bool:
        """Is this variant in the curated default set (what `flashcore build` builds)?"""
        return self in self.problem_defaults(self.dtype, self.head_dim, self.causal)

    # -- resources ------------------------------------------------------------------
    def build_seconds(self) -> float:
        """Measured compile time of one variant, one nvcc on one core (the CPU box; the H100 host's
        cores are slower: see ScalarConfig.BUILD_SECONDS)."""
        return self.BUILD_SECONDS

    @property
    def threads(self) -> int:
        return 32 * getattr(self, "warps")

    @property
    def element_bytes(self) -> int:
        return DTYPE_BYTES[self.dtype]

    @property
    def v_head_dim(self) -> int:
        """V's (and the output's) head dim in the kernel: head_dim unless a family sets its own."""
        return self.head_dim

    def smem_bytes(self) -> int:
        raise NotImplementedError

    def accumulator_registers(self) -> int:
        """fp32 accumulator registers per thread (a lower bound of the kernel's usage)."""
        raise NotImplementedError

    def register_budget(self) -> int:
        """Accumulator registers a thread may hold before ptxas would spill."""
        return ACCUMULATOR_REGISTER_BUDGET

    # -- validation -----------------------------------------------------------------
    def validation_errors(self) -> list[str]:
        """Why this config cannot be built (empty when it can)."""
        errors = []
        if self.dtype not in DTYPES:
            errors.append(f"dtype {self.dtype!r} not in {DTYPES}")
        if self.head_dim not in self.HEAD_DIMS:
            errors.append(f"head_dim {self.head_dim} not in {self.HEAD_DIMS} (family {self.family})")
        if errors:  # the resource checks below need a known dtype and head dim
            return errors
        for f in self.tile_fields():
            allowed = self.AXES.get(f.name)
            value = getattr(self, f.name)
            if allowed is not None and value not in allowed:
                errors.append(f"{f.name}={value} not in {allowed}")
        if self.threads > MAX_THREADS_PER_BLOCK:
            errors.append(f"{self.threads} threads per block > {MAX_THREADS_PER_BLOCK}")
        smem = self.smem_bytes()
        if smem > SMEM_LIMIT_BYTES:
            errors.append(f"shared memory {smem} B > {SMEM_LIMIT_BYTES} B per block")
        regs, budget = self.accumulator_registers(), self.register_budget()
        if regs > budget:
            errors.append(f"{regs} fp32 accumulator registers per thread > {budget} (would spill)")
        return errors

    # -- run time ---------------------------------------------------------------------------
    def computes_head_dim(self, head_dim: int, head_dim_v: int | None = None) -> bool:
        """Does this variant compute calls of ``head_dim`` (Q/K's) and ``head_dim_v`` (V's; None:
        the same): its own for both, or (PADS_HEAD_DIM) multiples of 8 whose larger pads to it
        among the family's head dims (:func:`kernel_head_dim`)?"""
        head_dim_v = head_dim if head_dim_v is None else head_dim_v
        if head_dim == head_dim_v == self.head_dim:
            return True
        return self.PADS_HEAD_DIM and kernel_head_dim(head_dim, head_dim_v, self.HEAD_DIMS) == self.head_dim

    def heuristic_tiles(self, key, sm_count: int, grid=None) -> dict[str, int]:
        """Tile sizes this family prefers for an untuned problem (``key``: a ProblemKey, read
        duck-typed: causal, seqlen_q, batch_heads, group) on ``sm_count`` SMs; the registry's
        heuristic aims at them instead of its generic sizes (registry.family_preferences).
        ``grid``: the same problem at its grid's sizes (Problem.grid_key: Sq in 64-row tiles,
        B x H exact), for rules that the bucket's top would misjudge; None: the key's."""
        return self.HEURISTIC_TILES.get(self.head_dim, {})

    def can_implement(self, problem) -> str | None:
        """Why this variant cannot run ``problem``, or None when it can. ``problem`` is read
        duck-typed (flashcore_cutlass.problem.Problem: dtype, head_dim, causal, sizes,
        ``aligned16``); dtype, head_dim and causal are matched by the registry before this."""
        if self.REQUIRES_ALIGNED16 and not getattr(problem, "aligned16", True):
            return ALIGNED16_REASON
        return None

    @property
    def is_valid(self) -> bool:
        return not self.validation_errors()

    def outside_scope(self, axis: str) -> bool:
        """Does any axis that ``axis``'s scope (``AXIS_SCOPES``) fixes have another value here?"""
        return any(getattr(self, other) != value for other, value in self.AXIS_SCOPES[axis].items())

    def check(self) -> "KernelConfig":
        errors = self.validation_errors()
        if errors:
            raise InvalidConfig(self.name, errors)
        return self

    # -- rendering ------------------------------------------------------------------
    def template_params(self) -> dict:
        """What the template sees: every field plus derived C++ spellings."""
        params = dataclasses.asdict(self)
        params.update(
            name=self.name,
            family=self.family,
            threads=self.threads,
            element=CUTLASS_ELEMENT[self.dtype],
            dtype_id=DTYPES.index(self.dtype),
            smem_bytes=self.smem_bytes(),
            is_causal="true" if self.causal else "false",
            arch=self.ARCH,
            min_cc=self.MIN_CC,
            has_can_implement=self.DEFINES_CAN_IMPLEMENT,
            has_workspace=self.DEFINES_WORKSPACE_BYTES,
            pads_head_dim=self.PADS_HEAD_DIM,
        )
        return params

    # -- enumeration ----------------------------------------------------------------
    @classmethod
    def space(cls, dtype: Iterable[str] | None = None, head_dim: Iterable[int] | None = None,
              causal: bool | None = None) -> Iterator["KernelConfig"]:
        """Every combination of the family's axes (valid or not) for each dtype/head dim/mask, in
        the order of the axes' values; a scoped axis (``AXIS_SCOPES``) takes its other values only
        within its scope. ``dtype``, ``head_dim`` (any of their values) and ``causal`` narrow the
        dtypes, head dims and masks enumerated (None: all)."""
        dtypes = [d for d in DTYPES if dtype is None or d in set(dtype)]
        head_dims = [d for d in cls.HEAD_DIMS if head_dim is None or d in set(head_dim)]
        masks = [c for c in (False, True) if causal is None or c == causal]
        fields = {f.name: f for f in cls.tile_fields()}
        names = list(fields)
        index = {n: {v: i for i, v in enumerate(cls.AXES[n])} for n in names}
        free = {n: cls.AXES[n] for n in names}
        at_default = {a: (fields[a].default,) for a in cls.AXIS_SCOPES}
        choices = [free | at_default]
        for axis, scope in cls.AXIS_SCOPES.items():
            others = tuple(v for v in cls.AXES[axis] if v != fields[axis].default)
            choices.append(free | at_default | {axis: others} | {n: (v,) for n, v in scope.items()})
        combos = [values for c in choices for values in itertools.product(*(c[n] for n in names))]
        if cls.AXIS_SCOPES:
            combos.sort(key=lambda values: tuple(index[n][v] for n, v in zip(names, values)))
        for dt, hd, masked in itertools.product(dtypes, head_dims, masks):
            for values in combos:
                yield cls(dtype=dt, head_dim=hd, causal=masked, **dict(zip(names, values)))


def all_head_dims() -> tuple[int, ...]:
    """Every registered family's variant head dims together (e.g. the CLI's choices)."""
    return tuple(sorted({d for cls in FAMILIES.values() for d in cls.HEAD_DIMS}))


def padded_head_dim(head_dim: int, head_dims: tuple[int, ...] | None = None) -> int | None:
    """The variant head dim that runs a call of ``head_dim`` by padding: the smallest of
    ``head_dims`` (a family's; default: all families') >= it, for a multiple of 8 up to the
    largest; None for any other value."""
    if head_dim < 8 or head_dim % 8:
        return None
    return next((d for d in sorted(head_dims or all_head_dims()) if d >= head_dim), None)


def kernel_head_dim(head_dim: int, head_dim_v: int | None = None,
                    head_dims: tuple[int, ...] | None = None) -> int | None:
    """The variant head dim (among ``head_dims``: a family's, default all families') that runs
    a call of Q/K head dim ``head_dim`` and V head dim ``head_dim_v`` (None: the same) by padding
    both (:func:`padded_head_dim` of the larger); None when either is not a multiple of 8 or the
    larger exceeds every variant."""
    head_dim_v = head_dim if head_dim_v is None else head_dim_v
    if padded_head_dim(head_dim, head_dims) is None or padded_head_dim(head_dim_v, head_dims) is None:
        return None
    return padded_head_dim(max(head_dim, head_dim_v), head_dims)


class InvalidConfig(ValueError):
    def __init__(self, name: str, errors: list[str]):
        super().__init__(f"invalid kernel config {name}: " + "; ".join(errors))
        self.name = name
        self.errors = errors


def config_from_name(name: str) -> KernelConfig:
    """Parse a variant name back into its config (the inverse of ``KernelConfig.name``)."""
    parts = name.split("_")
    if len(parts) < 5 or parts[0] != "fc":
        raise ValueError(f"not a flashcore variant name: {name!r}")
    family, dtype, dim, mask, tiles = parts[1], parts[2], parts[3], parts[4], parts[5:]
    cls = FAMILIES.get(family)
    if cls is None:
        raise ValueError(f"unknown kernel family {family!r} in {name!r}; known: {sorted(FAMILIES)}")
    if not dim.startswith("d") or not dim[1:].isdecimal() or mask not in ("causal", "full"):
        raise ValueError(f"malformed variant name {name!r} (expected fc_<family>_<dtype>_d<head_dim>_<full|causal>_<tiles>)")
    fields = cls.tile_fields()
    # Trailing axes whose default the name leaves out may be missing (KernelConfig.name).
    required = len(fields)
    while required > 0 and not fields[required - 1].metadata["spell_default"]:
        required -= 1
    if not required <= len(tiles) <= len(fields):
        expected = f"{required}-{len(fields)}" if required < len(fields) else f"{len(fields)}"
        raise ValueError(f"variant name {name!r} has {len(tiles)} tile tokens, family {family} needs {expected}")
    kwargs = {}
    # The required tokens in field order; then each optional axis spelled (at most once, in
    # field order), found by its abbreviation: a later one may be spelled while an earlier is not.
    optional = list(fields[required:])
    for i, token in enumerate(tiles):
        if i < required:
            f = fields[i]
        else:
            while optional and not token.startswith(optional[0].metadata["abbr"]):
                optional.pop(0)
            if not optional:
                raise ValueError(f"malformed tile token {token!r} in {name!r} (expected one of "
                                 f"{[o.metadata['abbr'] + '<int>' for o in fields[required:]]})")
            f = optional.pop(0)
        abbr = f.metadata["abbr"]
        if not token.startswith(abbr) or not token[len(abbr):].isdecimal():
            raise ValueError(f"malformed tile token {token!r} in {name!r} (expected {abbr}<int>)")
        kwargs[f.name] = int(token[len(abbr):])
    config = cls(dtype=dtype, head_dim=int(dim[1:]), causal=mask == "causal", **kwargs)
    if config.name != name:
        raise ValueError(f"variant name {name!r} is not canonical (expected {config.name!r})")
    return config
