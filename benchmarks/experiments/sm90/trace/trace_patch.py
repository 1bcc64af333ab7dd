"""Copy the kernel headers and insert timestamp hooks (trace_hooks.cuh) at fixed anchors.

    python trace_patch.py SRC_INCLUDE_DIR DST_DIR

The shipped headers stay untouched (an edit there would change every sm90 source hash). Each
anchor must occur exactly once; a header change that moves one fails here, loudly.
"""
import shutil
import sys
from pathlib import Path

# (file, anchor, replacement): the anchor text is kept, hooks go around it.
PATCHES = [
    ("sm90/common.cuh", "namespace flashcore::sm90 {\n",
     '#include "trace_hooks.cuh"\nnamespace flashcore::sm90 {\n'),
    # Consumers (mainloop): tile start, Q landed, first K landed, prologue softmax done.
    # (mma()'s wait on Q, not idle_tile()'s: the line after it tells them apart.)
    ("sm90/mainloop.cuh", "    FullBar::wait(&ss.bar_q, uint32_t(tile_iter) & 1);\n    if (tiles.count() == 0) {",
     "    FC_T(0);\n    FullBar::wait(&ss.bar_q, uint32_t(tile_iter) & 1);\n    FC_T(1);\n"
     "    uint64_t fc_kv = 0, fc_sched = 0, fc_s = 0, fc_pv = 0, fc_smax = 0, fc_t0 = 0, fc_t1 = 0;\n"
     "    if (tiles.count() == 0) {"),
    ("sm90/mainloop.cuh",
     "      // Prologue: S(n_last) and its softmax alone.\n      FullBar::wait(&ss.full_k[k_state.index], k_state.phase);\n",
     "      // Prologue: S(n_last) and its softmax alone.\n      FullBar::wait(&ss.full_k[k_state.index], k_state.phase);\n"
     "      FC_T(2);\n"),
    ("sm90/mainloop.cuh",
     "      note_pv_before(p_masked);\n      Tensor rP = convert_fragment<Element>(tSrS);\n",
     "      note_pv_before(p_masked);\n      FC_T(3);\n      Tensor rP = convert_fragment<Element>(tSrS);\n"),
    # Key loop: time in the K/V waits, the ping-pong token, the S and PV wgmma waits, the softmax.
    ("sm90/mainloop.cuh",
     "        FullBar::wait(&ss.full_k[k_state.index], k_state.phase);\n"
     "        FullBar::wait(&ss.full_v[v_state.index], v_state.phase);\n        Sched::acquire(wg);\n",
     "        fc_t0 = fc_trace::now();\n"
     "        FullBar::wait(&ss.full_k[k_state.index], k_state.phase);\n"
     "        FullBar::wait(&ss.full_v[v_state.index], v_state.phase);\n"
     "        fc_t1 = fc_trace::now(); fc_kv += fc_t1 - fc_t0;\n"
     "        Sched::acquire(wg);\n        fc_t0 = fc_trace::now(); fc_sched += fc_t0 - fc_t1;\n"),
    ("sm90/mainloop.cuh",
     "        warpgroup_wait<1>();  // S ready\n",
     "        fc_t0 = fc_trace::now();\n        warpgroup_wait<1>();  // S ready\n"
     "        fc_t1 = fc_trace::now(); fc_s += fc_t1 - fc_t0;\n"),
    ("sm90/mainloop.cuh",
     "        bool const masked = softmax_step(n, corr);  // overlaps the PV wgmma\n        warpgroup_wait<0>();\n",
     "        fc_t0 = fc_trace::now();\n        bool const masked = softmax_step(n, corr);  // overlaps the PV wgmma\n"
     "        fc_t1 = fc_trace::now(); fc_smax += fc_t1 - fc_t0;\n        warpgroup_wait<0>();\n"
     "        fc_pv += fc_trace::now() - fc_t1;\n"),
    ("sm90/mainloop.cuh",
     "      if constexpr (Traits::kQHoldsOnlyQ) release(&ss.bar_q_empty);  // every QK^T of this tile is done\n",
     "      FC_T(4);\n      if constexpr (Traits::kQHoldsOnlyQ) release(&ss.bar_q_empty);  // every QK^T of this tile is done\n"),
    ("sm90/mainloop.cuh",
     "      release(&ss.empty_v[v_state.index]);\n      next_v();\n      if constexpr (kSumByPV) {\n",
     "      release(&ss.empty_v[v_state.index]);\n      next_v();\n      FC_T(5);\n"
     "      FC_V(7, fc_kv); FC_V(8, fc_sched); FC_V(9, fc_s); FC_V(10, fc_pv); FC_V(11, tiles.count());\n"
     "      FC_V(12, fc_smax);\n      if constexpr (kSumByPV) {\n"),
    # Prologue: QK^T landed (its softmax follows).
    ("sm90/mainloop.cuh",
     "      Sched::pass(wg);\n      warpgroup_wait<0>();\n      warpgroup_fence_operand(tSrS);\n",
     "      Sched::pass(wg);\n      warpgroup_wait<0>();\n      warpgroup_fence_operand(tSrS);\n      FC_T(13);\n"),
    # Epilogue steps (the store gets the tile index as an extra argument).
    ("sm90/epilogue.cuh", "                                AccO& tOrO, Softmax& softmax) {\n",
     "                                AccO& tOrO, Softmax& softmax, int tile_iter = 0) {\n"
     "    bool const wg_leader = tid % 128 == 0;\n    int const wg = tid / 128;\n"),
    ("sm90/epilogue.cuh", "    softmax.finalize(o_rc, lse);\n", "    softmax.finalize(o_rc, lse);\n    FC_T(16);\n"),
    ("sm90/epilogue.cuh", "    // O -> smem: its own buffer", "    FC_T(17);\n    // O -> smem: its own buffer"),
    ("sm90/epilogue.cuh", "    Tensor rO = convert_fragment<Element>(tOrO);\n",
     "    FC_T(18);\n    Tensor rO = convert_fragment<Element>(tOrO);\n"),
    ("sm90/epilogue.cuh", "    cutlass::arch::fence_view_async_shared();  // generic-proxy writes -> visible to the TMA engine\n    sync_writers();\n",
     "    cutlass::arch::fence_view_async_shared();  // generic-proxy writes -> visible to the TMA engine\n    FC_T(19);\n"
     "    sync_writers();\n    FC_T(20);\n"),
    ("sm90/epilogue.cuh", "cta_tma.partition_D(gO));\n      tma_store_arrive();\n",
     "cta_tma.partition_D(gO));\n      tma_store_arrive();\n      FC_T(21);\n"),
    ("sm90/kernel_ws.cuh", "        SeqSpan const next_seq = seq_span(p.seq, next.batch, next.head);\n",
     "        SeqSpan const next_seq = seq_span(p.seq, next.batch, next.head);\n"
     "        if (tid % 128 == 0) fc_trace::put(1 + tid / 128, tile_iter, 22, fc_trace::now());\n"),
    # Skeleton: epilogue end (consumers); the producer's loads; CTA entry.
    ("sm90/kernel_ws.cuh",
     "        Epilogue::store(p, ss, w, seq, tid, tOrO, softmax);\n",
     "        Epilogue::store(p, ss, w, seq, tid, tOrO, softmax, tile_iter);\n"
     "        if (tid % 128 == 0) fc_trace::put(1 + tid / 128, tile_iter, 6, fc_trace::now());\n"),
    ("sm90/kernel_ws.cuh",
     "          Mainloop::load(p, ss, w, k_state, v_state, tile_iter);\n",
     "          fc_trace::put(0, tile_iter, 0, fc_trace::now());\n"
     "          Mainloop::load(p, ss, w, k_state, v_state, tile_iter);\n"
     "          fc_trace::put(0, tile_iter, 1, fc_trace::now());\n"),
    ("sm90/kernel_ws.cuh",
     "    SharedStorage& ss = *reinterpret_cast<SharedStorage*>(smem);\n",
     "    SharedStorage& ss = *reinterpret_cast<SharedStorage*>(smem);\n"
     "    if (threadIdx.x == 0) { fc_trace::put(0, 0, 13, fc_trace::now()); fc_trace::put(0, 0, 14, fc_trace::gtime()); }\n"),
    ("sm90/kernel_ws.cuh",
     "      Epilogue::finish(tid);\n",
     "      Epilogue::finish(tid);\n"
     "      if (tid == 0) { fc_trace::put(0, 0, 15, fc_trace::gtime()); fc_trace::put(0, 0, 12, fc_trace::now()); }\n"),
]


def main(src: str, dst: str) -> None:
    src_dir, dst_dir = Path(src), Path(dst)
    if dst_dir.exists():
        shutil.rmtree(dst_dir)
    shutil.copytree(src_dir, dst_dir)
    for rel, anchor, repl in PATCHES:
        path = dst_dir / "flashcore" / rel
        text = path.read_text()
        count = text.count(anchor)
        if count != 1:
            sys.exit(f"trace_patch: anchor found {count} times in {rel}:\n{anchor}")
        path.write_text(text.replace(anchor, repl))
    shutil.copy(Path(__file__).with_name("trace_hooks.cuh"), dst_dir / "flashcore" / "sm90" / "trace_hooks.cuh")


if __name__ == "__main__":
    main(*sys.argv[1:3])
