import hashlib
import re
import shutil

import jinja2
import pytest

from flashcore_codegen import render as render_module
from flashcore_codegen.config import FAMILIES, InvalidConfig, config_from_name
from flashcore_codegen.render import generate, headers_digest, render, write_if_changed
from flashcore_codegen.space import all_configs

NAMES = [
    "fc_scalar_fp16_d64_full_m16_w4",
    "fc_mma_bf16_d128_causal_m64_n64_w4",
    "fc_pipelined_bf16_d256_full_m64_n32_w4_s2_lean0",
]
SM90_NAME = "fc_sm90_bf16_d128_full_m128_n128_s2_sch1_p0_kv1"
CONFIGS = [config_from_name(n) for n in NAMES]


@pytest.fixture
def fresh_caches():
    """Clear the memoized header digest and jinja environment around a test that swaps
    INCLUDE_DIR/TEMPLATE_DIR, so no other test sees a digest of a temporary copy."""
    render_module.headers_digest.cache_clear()
    render_module._environment.cache_clear()
    yield
    render_module.headers_digest.cache_clear()
    render_module._environment.cache_clear()


# -- render ---------------------------------------------------------------------------------

@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: c.family)
def test_render_is_deterministic(config):
    a, b = render(config), render(config)
    assert a.text == b.text
    assert a.source_hash == b.source_hash
    assert a.config == config
    assert a.filename == f"{config.name}.cu"


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: c.family)
def test_render_names_symbol_and_registration(config):
    src = render(config)
    name = config.name
    assert f"cudaError_t {name}_run(" in src.text
    if config.family == "scalar":  # the SM80 families instantiate shared headers instead
        assert f"namespace {name}_impl {{" in src.text
    can_implement = f"&{name}_can_implement" if config.family != "scalar" else "nullptr"
    registration = (
        f'flashcore::register_variant(flashcore::VariantInfo{{\n    "{name}", "{src.source_hash}", '
        f'{["fp16", "bf16"].index(config.dtype)}, {config.head_dim}, {"true" if config.causal else "false"}, '
        f'&{name}_run,\n    "sm_90a", {config.MIN_CC}, nullptr,\n    {can_implement}, '
        f'{"true" if config.PADS_HEAD_DIM else "false"}}})'
    )
    assert registration in src.text
    if config.family != "scalar":  # the SM80 families check 16-byte alignment in C++
        assert f"const char* {name}_can_implement(flashcore::FwdParams const& p) {{" in src.text
        # ... with the helper api.h keeps for them (nvcc tests compile it; this says why first).
        api_h = (render_module.INCLUDE_DIR / "flashcore" / "api.h").read_text()
        assert "flashcore::vector16_alignment_error(" in src.text
        assert "inline const char* vector16_alignment_error(FwdParams const& p, int element_bytes)" in api_h


def test_sm90_registers_its_hooks():
    src = render(config_from_name(SM90_NAME))
    name = SM90_NAME
    assert f'&{name}_run,\n    "sm_90a", 90, &{name}_workspace_bytes,\n    &{name}_can_implement, true}})' in src.text
    assert f"return {name}_kernel::can_implement(p);" in src.text
    assert f"return {name}_kernel::workspace_bytes(p);" in src.text
    assert "{{" not in src.text and "{%" not in src.text
    assert src.text.endswith("\n")


def test_sm90_split_kv_combine_reaches_the_kernel():
    """The combine axis picks the kernel's parts: a cluster's (kSplitGlobal false) or global scratch's."""
    cluster = render(config_from_name("fc_sm90_bf16_d128_full_m64_n128_s2_sch1_p0_kv8")).text
    global_ = render(config_from_name("fc_sm90_bf16_d128_full_m64_n128_s2_sch1_p0_kv16_g1")).text
    assert "{{ splits }}" not in global_
    tail = "\n                                  0, 1>(p, stream);"  # V's head dim (0: Q's), key-split WGs (1: none)
    assert f"8, 1, false, false,{tail}" in cluster and "clusters of 8 CTAs per query tile" in cluster
    assert f"16, 1, true, false,{tail}" in global_ and "16 CTAs per query tile combined through global memory" in global_
    packing = render(config_from_name("fc_sm90_bf16_d128_causal_m64_n128_s2_sch1_p0_kv8_g1_pq1")).text
    assert f"8, 1, true, true,{tail}" in packing and "GQA groups packed into rows" in packing


def test_sm90_value_head_dim_reaches_the_kernel():
    """The head_dim_v axis: spelled only when set, passed as FwdKernel's kHeadDimV (TraitsDv)."""
    plain = config_from_name("fc_sm90_bf16_d192_causal_m128_n128_s2_sch2_p1_kv1")
    own = config_from_name("fc_sm90_bf16_d192_causal_m128_n128_s2_sch2_p1_kv1_v128")
    assert (plain.head_dim_v, plain.v_head_dim, own.head_dim_v, own.v_head_dim) == (0, 192, 128, 128)
    text = render(own).text
    assert "false, false,\n                                  128, 1>(p, stream);" in text and "V and O head dim 128" in text
    assert "false, false, 128, 1>;" in text


def test_sm90_key_split_reaches_the_kernel():
    """The key_split_wgs axis: the kernel's row warpgroups (1) and its key-split ones (FwdKernel's
    kKeyWGs); a plain variant passes 1, which keeps its traits, kernel name and code."""
    split = render(config_from_name("fc_sm90_fp16_d64_full_m64_n128_s4_sch1_p0_kv1_ks2")).text
    plain = render(config_from_name("fc_sm90_fp16_d64_full_m64_n128_s4_sch1_p0_kv1")).text
    assert "run_fwd<cutlass::half_t, 64, 64, 128, 4,\n                                  1, false, true, false," in split
    assert "false, false,\n                                  0, 2>(p, stream);" in split and "0, 2>;" in split
    assert "0, 1>(p, stream);" in plain and "2 consumer warpgroups sharing each query tile's key tiles" in split
    assert "sharing each query tile" not in plain


def test_sm90_lazy_rescale_reaches_the_kernel():
    """The lazy_rescale axis: FwdKernel's kLazyRescale; an eager variant's source is the one it was
    before the axis existed (no extra argument: its kernel keeps its traits, name and code)."""
    lazy = render(config_from_name("fc_sm90_bf16_d128_full_m128_n128_s2_sch2_p1_kv1_lr1")).text
    eager = render(config_from_name("fc_sm90_bf16_d128_full_m128_n128_s2_sch2_p1_kv1")).text
    assert "0, 1, true>(p, stream);" in lazy and "0, 1, true>;" in lazy and "O rescaled lazily" in lazy
    assert "0, 1>(p, stream);" in eager and "true>" not in eager and "lazily" not in eager


def test_sm90_stream_k_reaches_the_kernel():
    """The stream_k axis: FwdKernel's kStreamK after kLazyRescale (spelled out, false where the variant
    is eager); a variant without it keeps the source it had before the axis existed."""
    stream = render(config_from_name("fc_sm90_bf16_d128_full_m128_n128_s2_sch2_p1_kv1_lr1_sk1")).text
    eager_stream = render(config_from_name("fc_sm90_bf16_d128_full_m128_n128_s2_sch2_p1_kv1_sk1")).text
    lazy = render(config_from_name("fc_sm90_bf16_d128_full_m128_n128_s2_sch2_p1_kv1_lr1")).text
    assert "0, 1, true, true>(p, stream);" in stream and "0, 1, true, true>;" in stream and "stream-K" in stream
    assert "0, 1, false, true>(p, stream);" in eager_stream and "0, 1, false, true>;" in eager_stream
    assert "0, 1, true>(p, stream);" in lazy and "stream-K" not in lazy


def test_sm90_wg_keys_reaches_the_kernel():
    """The wg_keys axis: FwdKernel's kWgKeys after kStreamK (the arguments before it spelled out); a
    variant without it keeps the source it had before the axis existed."""
    own = render(config_from_name("fc_sm90_bf16_d256_causal_m128_n64_s2_sch1_p1_kv1_lr1_wk1")).text
    eager_own = render(config_from_name("fc_sm90_bf16_d256_causal_m128_n64_s2_sch1_p1_kv1_wk1")).text
    plain = render(config_from_name("fc_sm90_bf16_d256_causal_m128_n64_s2_sch1_p1_kv1_lr1")).text
    assert "0, 1, true, false, true>(p, stream);" in own and "0, 1, true, false, true>;" in own
    assert "key ranges per warpgroup" in own and "key ranges per warpgroup" not in plain
    assert "0, 1, false, false, true>(p, stream);" in eager_own
    assert "0, 1, true>(p, stream);" in plain and "0, 1, true>;" in plain


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: c.family)
def test_source_hash_is_source_plus_headers(config):
    src = render(config)
    assert len(src.source_hash) == 16 and int(src.source_hash, 16) >= 0
    assert src.text.count(src.source_hash) == 1
    unhashed = src.text.replace(src.source_hash, "")
    expected = hashlib.sha256((unhashed + headers_digest(config.family)).encode()).hexdigest()[:16]
    assert src.source_hash == expected


def test_every_valid_config_has_its_own_hash():
    sources = [render(c) for c in all_configs()]
    assert len(sources) == 556 + 35116
    assert len({s.source_hash for s in sources}) == len(sources)
    assert len({s.text for s in sources}) == len(sources)


def test_render_rejects_invalid_config():
    with pytest.raises(InvalidConfig, match="head_dim 96 not in"):
        render(config_from_name("fc_scalar_fp16_d96_full_m16_w4"))


def test_hash_covers_headers(tmp_path, monkeypatch, fresh_caches):
    config = CONFIGS[1]
    original = render(config)
    copy = tmp_path / "include"
    shutil.copytree(render_module.INCLUDE_DIR, copy)
    monkeypatch.setattr(render_module, "INCLUDE_DIR", copy)

    # Same headers elsewhere: the digest depends on contents and relative paths only.
    render_module.headers_digest.cache_clear()
    assert render(config).source_hash == original.source_hash

    header = copy / "flashcore" / "api.h"
    assert header.exists()
    header.write_text(header.read_text() + "\n// an edit\n")
    # Memoized: without clearing, the old digest is still used.
    assert render(config).source_hash == original.source_hash
    render_module.headers_digest.cache_clear()
    edited = render(config)
    assert edited.source_hash != original.source_hash
    # Only the hash changed in the text.
    assert edited.text.replace(edited.source_hash, "") == original.text.replace(original.source_hash, "")

    # A new header counts too, where the family's HEADERS patterns reach; elsewhere it does not.
    (copy / "flashcore" / "extra.h").write_text("// new\n")
    render_module.headers_digest.cache_clear()
    assert render(config).source_hash == edited.source_hash
    (copy / "flashcore" / "sm80").mkdir(exist_ok=True)
    (copy / "flashcore" / "sm80" / "extra.cuh").write_text("// new\n")
    render_module.headers_digest.cache_clear()
    assert render(config).source_hash not in {original.source_hash, edited.source_hash}


def _family_hashes():
    configs = CONFIGS + [config_from_name(SM90_NAME)]
    return {c.family: render(c).source_hash for c in configs}


def test_header_edits_change_only_their_families_hashes(tmp_path, monkeypatch, fresh_caches):
    """An sm90 header edit rebuilds (and re-tunes) sm90 variants only; api.h is everyone's."""
    before = _family_hashes()
    copy = tmp_path / "include"
    shutil.copytree(render_module.INCLUDE_DIR, copy)
    monkeypatch.setattr(render_module, "INCLUDE_DIR", copy)
    render_module.headers_digest.cache_clear()
    assert _family_hashes() == before

    header = copy / "flashcore" / "sm90" / "kernel_ws.cuh"
    header.write_text(header.read_text() + "\n// an sm90 edit\n")
    render_module.headers_digest.cache_clear()
    after_sm90 = _family_hashes()
    assert after_sm90["sm90"] != before["sm90"]
    assert {f: h for f, h in after_sm90.items() if f != "sm90"} == {f: h for f, h in before.items() if f != "sm90"}

    # An SM80 header (wherever the SM80 kernels keep theirs) changes mma and pipelined only.
    sm80 = sorted(p for p in render_module.family_headers("mma") if p.name != "api.h")[0]
    sm80.write_text(sm80.read_text() + "\n// an sm80 edit\n")
    render_module.headers_digest.cache_clear()
    after_sm80 = _family_hashes()
    assert {f for f in before if after_sm80[f] != after_sm90[f]} == {"mma", "pipelined"}

    api = copy / "flashcore" / "api.h"
    api.write_text(api.read_text() + "\n// an ABI edit\n")
    render_module.headers_digest.cache_clear()
    after_api = _family_hashes()
    assert all(after_api[f] != after_sm80[f] for f in before)


def test_family_flags_are_in_the_hash(monkeypatch, fresh_caches):
    before = _family_hashes()
    monkeypatch.setattr(FAMILIES["pipelined"], "NVCC_FLAGS", FAMILIES["pipelined"].NVCC_FLAGS + ("-DX=1",))
    render_module.headers_digest.cache_clear()
    after = _family_hashes()
    assert {f for f in before if after[f] != before[f]} == {"pipelined"}


def _includes(text: str) -> set[str]:
    return set(re.findall(r'^\s*#\s*include\s+"(flashcore/[^"]+)"', text, re.MULTILINE))


@pytest.mark.parametrize("name", NAMES + [SM90_NAME])
def test_family_headers_cover_every_flashcore_include(name):
    """HEADERS must list every header a variant includes (directly or through other headers):
    a header missing from it would not rebuild the variant when edited."""
    config = config_from_name(name)
    covered = {p.relative_to(render_module.INCLUDE_DIR).as_posix() for p in render_module.family_headers(config.family)}
    pending, seen = _includes(render(config).text), set()
    while pending:
        header = pending.pop()
        seen.add(header)
        pending |= _includes((render_module.INCLUDE_DIR / header).read_text()) - seen
    assert seen and seen <= covered, f"{config.family} HEADERS miss {sorted(seen - covered)}"


def test_header_patterns():
    match = lambda pattern, path: bool(render_module._glob_regex(pattern).match(path))  # noqa: E731
    assert match("flashcore/sm90/**", "flashcore/sm90/kernel_ws.cuh")
    assert match("flashcore/sm90/**", "flashcore/sm90/sub/x.cuh")
    assert not match("flashcore/sm90/**", "flashcore/sm80/x.cuh")
    assert match("flashcore/*.h", "flashcore/api.h") and not match("flashcore/*.h", "flashcore/sm90/a.h")
    assert not match("flashcore/api.h", "flashcore/api.hpp") and not match("flashcore/api.h", "flashcore/apixh")


def test_template_with_undefined_variable_fails(tmp_path, monkeypatch, fresh_caches):
    (tmp_path / "scalar.cu.j2").write_text("// {{ name }} {{ not_a_parameter }}\n")
    monkeypatch.setattr(render_module, "TEMPLATE_DIR", tmp_path)
    render_module._environment.cache_clear()
    with pytest.raises(jinja2.UndefinedError, match="'not_a_parameter' is undefined"):
        render(CONFIGS[0])

    (tmp_path / "scalar.cu.j2").write_text("// {{ name }} {{ block_m }} {{ source_hash }}\n")
    src = render(CONFIGS[0])
    assert src.text == f"// fc_scalar_fp16_d64_full_m16_w4 16 {src.source_hash}\n"


def test_real_templates_render_under_strict_undefined():
    env = render_module._environment()
    assert env.undefined is jinja2.StrictUndefined
    for config in CONFIGS:
        template = env.get_template(config.template)
        params = config.template_params()
        with pytest.raises(jinja2.UndefinedError):
            template.render(**params)  # source_hash missing


# -- write_if_changed and generate ------------------------------------------------------------

def test_write_if_changed(tmp_path):
    path = tmp_path / "a" / "b" / "x.cu"
    assert write_if_changed(path, "one\n") is True
    assert path.read_text() == "one\n"
    mtime = path.stat().st_mtime_ns
    assert write_if_changed(path, "one\n") is False
    assert path.stat().st_mtime_ns == mtime
    assert write_if_changed(path, "two\n") is True
    assert path.read_text() == "two\n"
    assert sorted(p.name for p in path.parent.iterdir()) == ["x.cu"]  # no .tmp left behind


def _mtimes(directory):
    return {p.name: p.stat().st_mtime_ns for p in directory.iterdir()}


def test_generate_writes_only_changed_files(tmp_path):
    out = tmp_path / "src"
    first = generate(CONFIGS + CONFIGS[:1], out)  # duplicates collapse
    expected = sorted(f"{n}.cu" for n in NAMES)
    assert [s.filename for s in first.sources] == expected
    assert [p.name for p in first.written] == expected
    assert first.removed == []
    assert sorted(p.name for p in out.iterdir()) == expected
    for s in first.sources:
        assert (out / s.filename).read_text() == s.text
    before = _mtimes(out)

    second = generate(CONFIGS, out)
    assert second.written == []
    assert _mtimes(out) == before

    edited = out / f"{NAMES[1]}.cu"
    edited.write_text(edited.read_text() + "// local edit\n")
    before = _mtimes(out)
    third = generate(CONFIGS, out)
    assert third.written == [edited]
    assert edited.read_text() == render(CONFIGS[1]).text
    after = _mtimes(out)
    assert {n for n in after if after[n] != before[n]} == {edited.name}


def test_generate_prune_removes_stale_sources(tmp_path):
    out = tmp_path / "src"
    generate(CONFIGS, out)
    other = out / "notes.cu"
    other.write_text("// not generated\n")
    garbage = out / "fc_garbage.cu"
    garbage.write_text("x")

    kept = generate(CONFIGS[:2], out)  # no prune: nothing removed
    assert kept.removed == [] and kept.written == []
    assert (out / f"{NAMES[2]}.cu").exists()

    pruned = generate(CONFIGS[:2], out, prune=True)
    assert pruned.written == []
    assert pruned.removed == sorted([out / f"{NAMES[2]}.cu", garbage])
    assert sorted(p.name for p in out.iterdir()) == sorted([f"{NAMES[0]}.cu", f"{NAMES[1]}.cu", "notes.cu"])


def test_generate_rejects_invalid_config_before_writing(tmp_path):
    out = tmp_path / "src"
    with pytest.raises(InvalidConfig):
        generate([CONFIGS[0], config_from_name("fc_mma_fp16_d256_full_m128_n64_w4")], out)
    assert not out.exists() or list(out.iterdir()) == []


# -- the toolchain in the hash ------------------------------------------------------------------

from flashcore_codegen import toolchain  # noqa: E402


def test_hash_covers_the_toolchain(monkeypatch, fresh_caches):
    config = CONFIGS[0]
    a = render(config, toolchain_id="nvcc=13.0.88\ncutlass=aaaa")
    b = render(config, toolchain_id="nvcc=12.8.93\ncutlass=aaaa")
    c = render(config, toolchain_id="nvcc=13.0.88\ncutlass=bbbb")
    assert len({a.source_hash, b.source_hash, c.source_hash}) == 3
    assert a == render(config, toolchain_id="nvcc=13.0.88\ncutlass=aaaa")  # deterministic
    # The default is this machine's toolchain.
    monkeypatch.setattr(toolchain, "identity", lambda: "nvcc=13.0.88\ncutlass=aaaa")
    render_module.headers_digest.cache_clear()
    assert render(config).source_hash == a.source_hash
    assert headers_digest("scalar") == headers_digest("scalar", "nvcc=13.0.88\ncutlass=aaaa")


def _fake_cutlass(root, minor="2"):
    (root / "cutlass").mkdir(parents=True)
    (root / "cute").mkdir()
    (root / "cutlass" / "version.h").write_text(
        f"#define CUTLASS_MAJOR 4\n#define CUTLASS_MINOR {minor}\n#define CUTLASS_PATCH 0 \n"
    )
    (root / "cute" / "tensor.hpp").write_text("// tensor\n")
    return root


def test_cutlass_digest_covers_version_and_listing_not_location(tmp_path, fresh_caches):
    one = _fake_cutlass(tmp_path / "one")
    assert toolchain.cutlass_header_version(one) == "4.2.0"
    assert toolchain.cutlass_header_version(tmp_path) == "unknown"
    d1 = toolchain.cutlass_digest(one)
    assert toolchain.cutlass_digest(one) == d1
    two = _fake_cutlass(tmp_path / "two")
    # The same headers installed elsewhere compile the same kernels: same digest, so measurements
    # keyed on source hashes carry over between machines.
    assert toolchain.cutlass_digest(two) == d1

    def fresh(path):
        toolchain.cutlass_digest.cache_clear()
        return toolchain.cutlass_digest(path)

    import os

    os.utime(one / "cute" / "tensor.hpp", (1, 1))
    assert fresh(one) == d1  # mtimes do not count (a reinstall of the same wheel)
    (one / "cute" / "tensor.hpp").write_text("// tensor, edited\n")
    d2 = fresh(one)
    assert d2 != d1
    (one / "cute" / "extra.hpp").write_text("\n")
    d3 = fresh(one)
    assert d3 not in {d1, d2}
    (one / "cutlass" / "version.h").write_text((one / "cutlass" / "version.h").read_text().replace("2", "3"))
    assert fresh(one) not in {d1, d2, d3}
    toolchain.cutlass_digest.cache_clear()


def test_identity_without_nvcc(monkeypatch):
    def missing():
        raise toolchain.ToolchainError("nvcc not found")

    monkeypatch.setattr(toolchain, "find_nvcc", missing)
    toolchain.identity.cache_clear()
    try:
        assert toolchain.identity().startswith("nvcc=none\n")
    finally:
        toolchain.identity.cache_clear()


def test_generator_imports_without_torch():
    import subprocess
    import sys

    code = (
        "import sys; sys.modules['torch'] = None\n"
        "from flashcore_codegen.config import config_from_name\n"
        "from flashcore_codegen.render import render\n"
        "from flashcore_codegen import toolchain\n"
        f"print(render(config_from_name('{NAMES[0]}')).source_hash)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == render(CONFIGS[0]).source_hash


def test_rendering_sixty_variants_is_fast():
    import time

    configs = all_configs()[:60] if isinstance(all_configs(), list) else list(all_configs())[:60]
    render(configs[0], toolchain_id="t")
    t0 = time.perf_counter()
    for c in configs:
        render(c, toolchain_id="t")
    assert time.perf_counter() - t0 < 0.5


@pytest.mark.parametrize("name, extended", [
    (SM90_NAME, False),                                          # block_n 128, head dim 128
    ("fc_sm90_fp16_d192_causal_m128_n80_s2_sch2_p1_kv1", True),  # block_n 80
    ("fc_sm90_bf16_d64_full_m64_n48_s2_sch1_p1_kv1", True),      # block_n 48
    ("fc_sm90_bf16_d64_full_m128_n96_s2_sch1_p1_kv1", False),    # 96 is a base shape
])
def test_sm90_asks_for_extended_wgmma_shapes_only_when_a_gemm_needs_them(name, extended):
    # CuTe's dense extended shapes are ~76k lines of a translation unit: only a tile whose block_n
    # is not a base wgmma N may pay for them, and none for the sparse ones (CuTe's define).
    config = config_from_name(name)
    text = render(config).text
    assert ('#include "flashcore/sm90/extended_shapes.cuh"' in text) == extended
    assert "CUTE_SM90_EXTENDED_MMA_SHAPES_ENABLED" not in text
    assert config.extended_wgmma_shapes == extended
    assert config.build_seconds() == (config.BUILD_SECONDS_EXTENDED_SHAPES if extended else config.BUILD_SECONDS)


def test_sm90_extended_qk_atoms_cover_the_block_n_axis():
    # extended_shapes.cuh names a QK^T atom for each extended block_n, qk_atom.cuh knows the base N
    # sizes as families.py does, and the axis holds no block_n that neither covers.
    from flashcore_codegen.families import SM90_BASE_WGMMA_N, SM90_EXTENDED_QK_N, Sm90Config

    include = render_module.INCLUDE_DIR / "flashcore" / "sm90"
    named = tuple(int(n) for n in re.findall(r"^FLASHCORE_SM90_EXTENDED_QK_ATOM\((\d+)\)$",
                                             (include / "extended_shapes.cuh").read_text(), re.M))
    assert named == SM90_EXTENDED_QK_N
    base = re.search(r"is_base_wgmma_n\(int n\) \{\s*return ([^;]+);", (include / "qk_atom.cuh").read_text()).group(1)
    assert tuple(int(n) for n in re.findall(r"n == (\d+)", base)) == SM90_BASE_WGMMA_N
    assert set(Sm90Config.AXES["block_n"]) <= set(SM90_BASE_WGMMA_N + SM90_EXTENDED_QK_N)
    assert not set(SM90_BASE_WGMMA_N) & set(SM90_EXTENDED_QK_N)
