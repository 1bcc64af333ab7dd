"""How every kernel translation unit is compiled. Part of each variant's source hash."""

NVCC_FLAGS = (
    "-std=c++17",
    "-O3",
    "-gencode=arch=compute_90a,code=sm_90a",
    "--use_fast_math",
    "-DNDEBUG",
    "--expt-relaxed-constexpr",
    "-Xcompiler=-fPIC",
    "-Xptxas=-v",  # resource report (registers, spills) kept in obj/<variant>.o.log
)
