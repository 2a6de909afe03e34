#!/usr/bin/env python3
"""Unfused onnxruntime (CPU) baseline for GMMFR (npu_grouped_matmul_finalize_routing), A8W8.

What it computes
----------------
SPEC section 1.1 (A8W8), for one fixed routing: group sizes and the active rows' row_index are
baked into the graph as constants; x, pertoken_scale, logit and shared_input are run-time inputs;
the expert weights (logical ND (k, n) int8, not the NZ storage) and the per-channel scales are
initializers (so onnxruntime pre-packs the MatMulInteger weights, as it would in a deployment).

    for each non-empty expert g (rows [start[g], start[g] + counts[g]) of x):
        acc_g = MatMulInteger(Slice(x, rows of g), W[g])               int32 (count_g, n), exact
        y_g   = Cast(acc_g, float) * scale[g]                           per-channel, broadcast over rows
        y_g   = y_g * Slice(pertoken_scale[:M] * logit[:M], rows of g)  per-row factor, pts*logit formed first
    Y    = Concat(y_0, y_1, ...)                                        (M, n), M = sum(counts), row order
    init = Pad(f32(bf16(shared_input)) * shared_input_weight,           zeros (output_bs, n) with the
               pads [offset, 0, output_bs - offset - bsdp, 0])           shared slice *written* into it
           or ConstantOfShape(output_bs, n) = 0 when there is no shared_input
    out  = ScatterND(init, row_index[:M, None], Y, reduction="add")     combine back to token order
                                                                        (split into race-free waves
                                                                        by default, see --combine)

Rows p >= M = sum(counts) are never read: x is sliced per expert, pertoken_scale and logit are
sliced to [:M] before anything touches them, and only row_index[:M] is baked into the graph.

The shared slice is combined with Pad (choice documented here): padding the scaled (bsdp, n)
slice with zero rows gives exactly "zeros, then the slice written (not added) at the offset",
and the expert contributions are then scatter-added on top, so each output row is
shared + y_p1 + y_p2 + ... in increasing p, as SPEC 1.1 prescribes. The Cast f32 -> bf16 -> f32
on shared_input models its bf16 operand type (the input values are bf16-representable, so it is
exact; the script feeds f32 because numpy has no bf16).

The graph is deliberately UNFUSED: the per-expert slices of x, the int32 accumulators, the f32
expert outputs and their Concat are all materialized, exactly as a GMM op followed by a separate
finalize-routing (combine) op would be. onnxruntime's own graph optimizer runs at the chosen level
(--opt-level, default all); with onnxruntime 1.32 it only turns the constant-bound Slices into
Splits (no MatMulIntegerToFloat fusion happens), so every expert output stays materialized
(--optimized-model PATH writes what it ran).

Activation encoding (--a-encoding)
----------------------------------
 * u8 (default): x[:M] is shifted once to uint8 (Cast int32, Add 128, Cast uint8) and each expert
   runs MatMulInteger(x_u8 rows, W[g], a_zero_point=128), which is (x + 128 - 128) @ W exactly.
   This is how onnxruntime is normally fed int8 activations, and it reaches MLAS's U8S8 kernels
   (AVX2 / AVX512-VNNI, with pre-packed weights).
 * s8: MatMulInteger(int8 x rows, int8 W) literally. On x86 without AVX-VNNI-INT8, MLAS has no
   fast S8S8 kernel: on the 2-core AMD EPYC (AVX512-VNNI) build machine the whole graph is
   11-18x slower than with u8 on the benchmark shapes (a lone MatMulInteger 13-45x), so it
   would make a strawman baseline. Same results bit for bit.

Combine modes (--combine)
-------------------------
 * waves (default): the active rows are split into waves so that no wave repeats an output row
   (wave j = the j-th occurrence, in increasing p, of each token), and the waves are applied as a
   chain of ScatterND(reduction="add") nodes, each preceded by a Gather of its rows of Y.
   onnxruntime's CPU ScatterND runs its index entries in parallel (ThreadPool::TryParallelFor)
   without atomics, so ONE ScatterND with duplicate indices (each token occurs topK times) loses
   updates nondeterministically when intra_op_num_threads > 1 (onnxruntime issue 23396). The
   waves are race-free at any thread count and add in the SPEC order (increasing p per row).
   Extra cost: one Gather copy of Y (M * n floats) and topK ScatterND launches.
 * single: exactly one ScatterND(reduction="add") over all M rows. Exact and deterministic with
   --threads 1; with more threads it is subject to the race above (the error check shows it).

ONNX ops used (default domain, opset 17): Slice, Cast, Add (u8 encoding), MatMulInteger, Mul,
Unsqueeze, Concat, Gather (waves mode), ScatterND (reduction="add"), Pad (shared_input) or
ConstantOfShape (no shared_input), Identity (logit or pertoken_scale alone; no active rows).

How to run
----------
    pip install onnx onnxruntime numpy
    # validate on a case directory (SPEC section 7); compares with expected.npy when present
    python3 bench/ort_baseline.py --case ../shared/cases/a8w8_doc_small --threads 1
    # benchmark a generated problem: --shape m,k,n,e,batch,topk
    python3 bench/ort_baseline.py --shape 576,2048,7168,8,72,8 --threads 2 --repeat 20
    python3 bench/ort_baseline.py --shape 128,2048,7168,32,16,8 --threads 1     # DeepSeek-V3 shard
    python3 bench/ort_baseline.py --shape 512,768,2048,32,64,8 --threads 1      # Qwen3-30B-A3B shard
    # write the generated inputs as a case directory (NZ w.npy, attrs.json, expected.npy)
    python3 bench/ort_baseline.py --shape 128,2048,7168,32,16,8 --save-inputs /tmp/dsv3 --seed 0

Generated problems (--shape m,k,n,e,batch,topk): each of the `batch` tokens picks `topk` distinct
experts at random (seeded by --seed), the (token, slot) pairs are stably sorted by expert
(row_index = gidx // topk, logit = topk_weights.flatten()[gidx], as npu_moe_init_routing_v2
produces), counts = per-expert pair counts, output_bs = batch. If m > batch*topk the extra rows
are a garbage tail (random x, NaN pertoken_scale/logit, out-of-range row_index), as under expert
parallelism. shared_input defaults to (batch // 4) rows at offset batch // 2 (the torch_npu doc
example: 18 rows at offset 36 for batch 72); see --shared-rows/--shared-offset/--no-shared.

Output: a human-readable summary and one machine-readable line
    ort_ms_median=<float> ort_ms_min=<float> threads=<N> shape=m,k,n,e
(timings of session.run only: --repeat timed runs after 3 warm-up runs; intra_op_num_threads=N,
inter_op_num_threads=1, sequential execution mode). With an expected output (a case's
expected.npy, or the float64 reference computed for --check / --save-inputs) it also prints
    max_abs_err=<float> rel_err=<float> tol=<float> status=ok|FAIL
where rel_err = max |out - expected| / max |expected|; the exit status is 1 on FAIL, 2 for an
invalid input (rejected, with a message), 0 otherwise (also when an A8W4 case is skipped).

The float64 reference (SPEC 1.1) uses exact integer accumulation, f32 products
(f32(acc) * scale * f32(pts * logit)) and float64 accumulation of the contributions in increasing
p, then a cast to f32: the same convention as the public cases' expected.npy. It runs after the
timed runs so that numpy's BLAS threads do not disturb them.

OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE (numpy's bundled OpenBLAS, used only by the reference) are
taken from the environment as set; this script never sets or changes them (it prints them).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

OPSET = 17
WARMUP = 3


class Rejected(Exception):
    """Input outside SPEC 1.1 (e.g. sum(group_list) > m, row_index out of range)."""


class Skipped(Exception):
    """Valid input this baseline does not cover (A8W4, A8W8 bias)."""


# ----------------------------------------------------------------------------------------------
# data helpers


def round_to_bf16(a: np.ndarray) -> np.ndarray:
    """f32 -> nearest bf16 (round half to even) -> f32. Identity on bf16-representable values."""
    a = np.ascontiguousarray(a, dtype=np.float32)
    u = a.view(np.uint32).astype(np.uint64)
    r = ((u + 0x7FFF + ((u >> 16) & 1)) & 0xFFFF0000).astype(np.uint32)
    out = r.view(np.float32).copy()
    nan = np.isnan(a)
    out[nan] = a[nan]
    return out


def nd_to_nz(w: np.ndarray) -> np.ndarray:
    """Logical (e, k, n) int8 -> FRACTAL_NZ (e, n1, k1, 16, 32), zero padded (SPEC 3)."""
    e, k, n = w.shape
    k1, n1 = -(-k // 16), -(-n // 32)
    p = np.zeros((e, k1 * 16, n1 * 32), dtype=w.dtype)
    p[:, :k, :n] = w
    return np.ascontiguousarray(p.reshape(e, k1, 16, n1, 32).transpose(0, 3, 1, 2, 4))


def nz_to_nd(w_nz: np.ndarray, k: int, n: int) -> np.ndarray:
    """FRACTAL_NZ (e, n1, k1, 16, 32) -> logical (e, k, n): transpose back and crop the padding."""
    e, n1, k1, b16, b32 = w_nz.shape
    if (b16, b32) != (16, 32) or k1 * 16 < k or n1 * 32 < n:
        raise Rejected(f"w.npy NZ shape {w_nz.shape} does not hold a (k={k}, n={n}) weight")
    full = w_nz.transpose(0, 2, 3, 1, 4).reshape(e, k1 * 16, n1 * 32)
    return np.ascontiguousarray(full[:, :k, :n])


def counts_from_group_list(group_list: np.ndarray, group_list_type: int) -> np.ndarray:
    gl = np.asarray(group_list, dtype=np.int64).reshape(-1)
    if group_list_type == 1:
        counts = gl.copy()
    elif group_list_type == 0:
        counts = np.diff(np.concatenate([[0], gl]))
    else:
        raise Rejected(f"group_list_type {group_list_type} not in {{0, 1}}")
    if (counts < 0).any():
        raise Rejected(f"negative group size in group_list {gl.tolist()} (type {group_list_type})")
    return counts


class Problem:
    """One A8W8 GMMFR problem: logical weights plus everything in a case directory."""

    def __init__(self, x, W, group_list, scale, pertoken_scale, logit, row_index, shared_input,
                 attrs, expected=None, name=""):
        self.x = np.ascontiguousarray(x, dtype=np.int8)
        self.W = W  # (e, k, n) int8 logical
        self.group_list = np.asarray(group_list, dtype=np.int64)
        self.scale = np.ascontiguousarray(scale, dtype=np.float32)
        self.pertoken_scale = None if pertoken_scale is None else np.ascontiguousarray(pertoken_scale, np.float32).reshape(-1)
        self.logit = None if logit is None else np.ascontiguousarray(logit, np.float32).reshape(-1)
        self.row_index = None if row_index is None else np.asarray(row_index).reshape(-1)
        self.shared_input = None if shared_input is None else round_to_bf16(shared_input)
        self.attrs = {"shared_input_weight": 1.0, "shared_input_offset": 0, "output_bs": 0,
                      "group_list_type": 1, "dtype": 0}
        self.attrs.update(attrs or {})
        self.expected = expected
        self.name = name
        self.validate()

    def validate(self):
        m, k = self.x.shape
        if self.W.ndim != 3 or self.W.shape[1] != k:
            raise Rejected(f"weight shape {self.W.shape} does not match x {self.x.shape}")
        e, _, n = self.W.shape
        self.m, self.k, self.n, self.e = m, k, n, e
        if self.scale.shape != (e, n):
            raise Rejected(f"scale shape {self.scale.shape} != (e, n) = {(e, n)}")
        if self.group_list.shape != (e,):
            raise Rejected(f"group_list shape {self.group_list.shape} != (e,) = {(e,)}")
        if int(self.attrs.get("dtype", 0)) != 0:
            raise Rejected("dtype must be 0 (f32 output)")
        self.counts = counts_from_group_list(self.group_list, int(self.attrs["group_list_type"]))
        self.starts = np.concatenate([[0], np.cumsum(self.counts)[:-1]]).astype(np.int64)
        self.M = int(self.counts.sum())
        if self.M > m:
            raise Rejected(f"sum(group_list) = {self.M} > m = {m}")
        ob = int(self.attrs["output_bs"])
        if ob < 0:
            raise Rejected(f"output_bs {ob} < 0")
        self.B = ob if ob > 0 else m
        for nm in ("pertoken_scale", "logit", "row_index"):
            a = getattr(self, nm)
            if a is not None and a.shape[0] != m:
                raise Rejected(f"{nm} has {a.shape[0]} rows, x has {m}")
        if self.row_index is None:
            raise Rejected("row_index is required")
        if self.row_index.dtype not in (np.int32, np.int64):
            raise Rejected(f"row_index dtype {self.row_index.dtype} is not int32/int64")
        self.ri_active = self.row_index[: self.M].astype(np.int64)
        bad = (self.ri_active < 0) | (self.ri_active >= self.B)
        if bad.any():
            p = int(np.argmax(bad))
            raise Rejected(f"active row_index[{p}] = {int(self.ri_active[p])} outside [0, output_bs={self.B})")
        if self.shared_input is not None:
            si = self.shared_input
            if si.ndim != 2 or si.shape[1] != n or si.shape[0] < 1:
                raise Rejected(f"shared_input shape {si.shape} is not (bsdp>=1, n={n})")
            off = int(self.attrs["shared_input_offset"])
            if off < 0 or off + si.shape[0] > self.B:
                raise Rejected(f"shared_input rows [{off}, {off + si.shape[0]}) outside output_bs {self.B}")

    def shape_str(self):
        return f"{self.m},{self.k},{self.n},{self.e}"


def load_case(d: str) -> Problem:
    def opt(nm):
        p = os.path.join(d, nm + ".npy")
        return np.load(p) if os.path.exists(p) else None

    if os.path.exists(os.path.join(d, "expect_error")):
        with open(os.path.join(d, "expect_error")) as f:
            print(f"note: case says it must be rejected: {f.read().strip()}")
    attrs = {}
    if os.path.exists(os.path.join(d, "attrs.json")):
        with open(os.path.join(d, "attrs.json")) as f:
            attrs = json.load(f)
    x = np.load(os.path.join(d, "x.npy"))
    w = np.load(os.path.join(d, "w.npy"))
    scale = np.load(os.path.join(d, "scale.npy"))
    if scale.dtype == np.int64 or scale.ndim == 3 or w.ndim == 3 or opt("offset") is not None:
        raise Skipped("A8W4 case (int64 packed scale / ND int4 weight): this baseline covers A8W8 only")
    if opt("bias") is not None:
        raise Skipped("A8W8 with bias (SPEC 1.4, not accepted by torch_npu): not covered by this baseline")
    if x.dtype != np.int8 or w.dtype != np.int8 or w.ndim != 5:
        raise Rejected(f"A8W8 expects int8 x and 5-D NZ int8 w; got x {x.dtype}, w {w.dtype} {w.shape}")
    if x.ndim != 2 or scale.ndim != 2:
        raise Rejected(f"x must be 2-D and scale (e, n); got {x.shape}, {scale.shape}")
    W = nz_to_nd(w, x.shape[1], scale.shape[1])
    return Problem(x, W, np.load(os.path.join(d, "group_list.npy")), scale, opt("pertoken_scale"),
                   opt("logit"), opt("row_index"), opt("shared_input"), attrs, opt("expected"),
                   name=os.path.basename(os.path.normpath(d)))


def generate(m, k, n, e, batch, topk, seed, shared_rows, shared_offset, shared_weight,
             group_list_type) -> Problem:
    if topk > e:
        raise Rejected(f"topk {topk} > e {e}: tokens pick distinct experts")
    if m < batch * topk:
        raise Rejected(f"m {m} < batch*topk {batch * topk}")
    rng = np.random.default_rng(seed)
    experts = np.argsort(rng.random((batch, e)), axis=1)[:, :topk]  # distinct experts per token
    tw = rng.uniform(0.1, 1.0, (batch, topk)).astype(np.float32)
    tw /= tw.sum(axis=1, keepdims=True)
    flat = experts.reshape(-1)  # index t*topk + j
    gidx = np.argsort(flat, kind="stable")
    M = batch * topk
    counts = np.bincount(flat, minlength=e).astype(np.int64)
    row_index = np.full(m, batch, dtype=np.int64)  # garbage tail: out of range
    row_index[:M] = gidx // topk
    logit = np.full(m, np.nan, dtype=np.float32)
    logit[:M] = tw.reshape(-1)[gidx]
    pts = np.full(m, np.nan, dtype=np.float32)
    pts[:M] = rng.uniform(0.5, 1.5, M).astype(np.float32) * np.float32(1.0 / 64)
    x = rng.integers(-128, 128, (m, k), dtype=np.int8)
    W = rng.integers(-128, 128, (e, k, n), dtype=np.int8)
    scale = (rng.uniform(0.5, 1.5, (e, n)) * 1e-3).astype(np.float32)
    shared = None
    attrs = {"shared_input_weight": float(shared_weight), "shared_input_offset": 0,
             "output_bs": int(batch), "group_list_type": int(group_list_type), "dtype": 0}
    if shared_rows > 0:
        shared = round_to_bf16(rng.standard_normal((shared_rows, n)).astype(np.float32))
        attrs["shared_input_offset"] = int(shared_offset)
    gl = counts if group_list_type == 1 else np.cumsum(counts)
    return Problem(x, W, gl, scale, pts, logit, row_index, shared, attrs,
                   name=f"gen m={m} k={k} n={n} e={e} batch={batch} topk={topk} seed={seed}")


def reference(p: Problem) -> np.ndarray:
    """SPEC 1.1 in float64 accumulation (exact int acc, f32 products), rows p < M only."""
    out = np.zeros((p.B, p.n), dtype=np.float64)
    if p.shared_input is not None:
        off, bsdp = int(p.attrs["shared_input_offset"]), p.shared_input.shape[0]
        out[off:off + bsdp] = p.shared_input * np.float32(p.attrs["shared_input_weight"])
    M = p.M
    fac = None
    if p.pertoken_scale is not None and p.logit is not None:
        fac = p.pertoken_scale[:M] * p.logit[:M]
    elif p.pertoken_scale is not None:
        fac = p.pertoken_scale[:M]
    elif p.logit is not None:
        fac = p.logit[:M]
    for g in range(p.e):
        s, c = int(p.starts[g]), int(p.counts[g])
        if c == 0:
            continue
        acc = p.x[s:s + c].astype(np.float64) @ p.W[g].astype(np.float64)  # exact: |acc| < 2^53
        y = acc.astype(np.float32) * p.scale[g]
        if fac is not None:
            y = y * fac[s:s + c, None]
        np.add.at(out, p.ri_active[s:s + c], y.astype(np.float64))  # unbuffered, increasing p
    return out.astype(np.float32)


def save_case(p: Problem, d: str, expected: np.ndarray, readme: str):
    os.makedirs(d, exist_ok=True)
    np.save(os.path.join(d, "x.npy"), p.x)
    np.save(os.path.join(d, "w.npy"), nd_to_nz(p.W))
    np.save(os.path.join(d, "group_list.npy"), p.group_list.astype(np.int64))
    np.save(os.path.join(d, "scale.npy"), p.scale)
    if p.pertoken_scale is not None:
        np.save(os.path.join(d, "pertoken_scale.npy"), p.pertoken_scale)
    if p.logit is not None:
        np.save(os.path.join(d, "logit.npy"), p.logit)
    np.save(os.path.join(d, "row_index.npy"), p.row_index)
    if p.shared_input is not None:
        np.save(os.path.join(d, "shared_input.npy"), p.shared_input)
    with open(os.path.join(d, "attrs.json"), "w") as f:
        json.dump(p.attrs, f)
    np.save(os.path.join(d, "expected.npy"), expected)
    with open(os.path.join(d, "README"), "w") as f:
        f.write(readme + "\n")


# ----------------------------------------------------------------------------------------------
# graph


def build_model(p: Problem, combine: str, a_encoding: str = "u8"):
    nodes, inits, inputs = [], [], []

    def const(name, arr):
        inits.append(numpy_helper.from_array(np.ascontiguousarray(arr), name))
        return name

    def i64(name, vals):
        return const(name, np.asarray(vals, dtype=np.int64))

    m, k, n, M, B = p.m, p.k, p.n, p.M, p.B
    inputs.append(helper.make_tensor_value_info("x", TensorProto.INT8, [m, k]))
    feeds = {"x": p.x}
    if M > 0:
        i64("ax0", [0])
        i64("row_end", [M])
    # per-row factor pts[:M] * logit[:M], sliced before use so that garbage rows are never read
    fac_parts = []
    for nm in ("pertoken_scale", "logit"):
        a = getattr(p, nm)
        if a is None:
            continue
        inputs.append(helper.make_tensor_value_info(nm, TensorProto.FLOAT, [m]))
        feeds[nm] = a
        if M > 0:
            nodes.append(helper.make_node("Slice", [nm, "ax0", "row_end", "ax0"], [nm + "_act"]))
            fac_parts.append(nm + "_act")
    fac = None
    if fac_parts:
        if len(fac_parts) == 2:
            nodes.append(helper.make_node("Mul", fac_parts, ["fac1d"]))
        else:
            nodes.append(helper.make_node("Identity", fac_parts, ["fac1d"]))
        i64("ax1", [1])
        nodes.append(helper.make_node("Unsqueeze", ["fac1d", "ax1"], ["fac"]))
        fac = "fac"

    # activation encoding for MatMulInteger (see the docstring): u8 = x + 128 with a_zero_point 128
    xsrc, mmi_extra = "x", []
    if a_encoding == "u8" and M > 0:
        nodes.append(helper.make_node("Slice", ["x", "ax0", "row_end", "ax0"], ["x_act"]))
        nodes.append(helper.make_node("Cast", ["x_act"], ["x_i32"], to=TensorProto.INT32))
        const("c128", np.asarray(128, dtype=np.int32))
        nodes.append(helper.make_node("Add", ["x_i32", "c128"], ["x_shift"]))
        nodes.append(helper.make_node("Cast", ["x_shift"], ["x_u8"], to=TensorProto.UINT8))
        const("a_zp", np.asarray(128, dtype=np.uint8))
        xsrc, mmi_extra = "x_u8", ["a_zp"]

    # per-expert grouped matmul + dequant (materialized expert outputs)
    ys = []
    for g in range(p.e):
        s, c = int(p.starts[g]), int(p.counts[g])
        if c == 0:
            continue
        i64(f"s{g}", [s])
        i64(f"e{g}", [s + c])
        nodes.append(helper.make_node("Slice", [xsrc, f"s{g}", f"e{g}", "ax0"], [f"x{g}"]))
        const(f"W{g}", p.W[g])
        nodes.append(helper.make_node("MatMulInteger", [f"x{g}", f"W{g}"] + mmi_extra, [f"acc{g}"]))
        nodes.append(helper.make_node("Cast", [f"acc{g}"], [f"accf{g}"], to=TensorProto.FLOAT))
        const(f"scale{g}", p.scale[g])
        y = f"ys{g}"
        nodes.append(helper.make_node("Mul", [f"accf{g}", f"scale{g}"], [y]))
        if fac is not None:
            nodes.append(helper.make_node("Slice", [fac, f"s{g}", f"e{g}", "ax0"], [f"fac{g}"]))
            nodes.append(helper.make_node("Mul", [y, f"fac{g}"], [f"y{g}"]))
            y = f"y{g}"
        ys.append(y)

    # zero-initialised output with the shared slice written in
    if p.shared_input is not None:
        bsdp = p.shared_input.shape[0]
        off = int(p.attrs["shared_input_offset"])
        inputs.append(helper.make_tensor_value_info("shared_input", TensorProto.FLOAT, [bsdp, n]))
        feeds["shared_input"] = p.shared_input
        nodes.append(helper.make_node("Cast", ["shared_input"], ["si_bf16"], to=TensorProto.BFLOAT16))
        nodes.append(helper.make_node("Cast", ["si_bf16"], ["si_f32"], to=TensorProto.FLOAT))
        const("si_w", np.asarray(p.attrs["shared_input_weight"], dtype=np.float32))
        nodes.append(helper.make_node("Mul", ["si_f32", "si_w"], ["si_scaled"]))
        i64("si_pads", [off, 0, B - off - bsdp, 0])
        nodes.append(helper.make_node("Pad", ["si_scaled", "si_pads"], ["init"], mode="constant"))
    else:
        i64("out_shape", [B, n])
        nodes.append(helper.make_node(
            "ConstantOfShape", ["out_shape"], ["init"],
            value=helper.make_tensor("zero", TensorProto.FLOAT, [1], [0.0])))

    # combine back to token order
    if M == 0:
        nodes.append(helper.make_node("Identity", ["init"], ["out"]))
    else:
        nodes.append(helper.make_node("Concat", ys, ["Y"], axis=0))
        ri = p.ri_active
        if combine == "single":
            i64("ri_all", ri[:, None])
            nodes.append(helper.make_node("ScatterND", ["init", "ri_all", "Y"], ["out"], reduction="add"))
        else:
            occ = np.zeros(M, dtype=np.int64)
            seen = {}
            for q in range(M):
                r = int(ri[q])
                occ[q] = seen.get(r, 0)
                seen[r] = occ[q] + 1
            nw = int(occ.max()) + 1
            cur = "init"
            for j in range(nw):
                pos = np.nonzero(occ == j)[0].astype(np.int64)
                if len(pos) == M:  # no duplicates at all: the wave is Y itself
                    upd = "Y"
                else:
                    i64(f"pos{j}", pos)
                    nodes.append(helper.make_node("Gather", ["Y", f"pos{j}"], [f"upd{j}"], axis=0))
                    upd = f"upd{j}"
                i64(f"ri{j}", ri[pos][:, None])
                nxt = "out" if j == nw - 1 else f"acc_out{j}"
                nodes.append(helper.make_node("ScatterND", [cur, f"ri{j}", upd], [nxt], reduction="add"))
                cur = nxt

    graph = helper.make_graph(
        nodes, "gmmfr_unfused_a8w8", inputs,
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, [B, n])], initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="gmmfr-bench-ort-baseline")
    model.ir_version = 8
    return model, feeds


def make_session(model_bytes: bytes, threads: int, opt_level: str, optimized_path: str | None):
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = {
        "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
        "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
        "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
    }[opt_level]
    if optimized_path:
        so.optimized_model_filepath = optimized_path
    return ort.InferenceSession(model_bytes, sess_options=so, providers=["CPUExecutionProvider"])


def op_histogram(model) -> str:
    h = {}
    for nd in model.graph.node:
        key = nd.op_type if not nd.domain else f"{nd.domain}.{nd.op_type}"
        h[key] = h.get(key, 0) + 1
    return " ".join(f"{k}x{v}" for k, v in sorted(h.items()))


# ----------------------------------------------------------------------------------------------


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--case", metavar="DIR", help="SPEC section 7 case directory")
    src.add_argument("--shape", metavar="m,k,n,e,batch,topk", help="generate random data")
    ap.add_argument("--threads", type=int, default=1, help="intra_op_num_threads (default 1)")
    ap.add_argument("--repeat", type=int, default=20, help="timed runs after 3 warm-ups (default 20)")
    ap.add_argument("--seed", type=int, default=0, help="RNG seed for --shape (default 0)")
    ap.add_argument("--combine", choices=["waves", "single"], default="waves",
                    help="waves (default): chained race-free ScatterND adds; single: one ScatterND "
                         "(racy in onnxruntime when --threads > 1)")
    ap.add_argument("--a-encoding", choices=["u8", "s8"], default="u8",
                    help="u8 (default): MatMulInteger(x+128 as uint8, W, a_zero_point=128), exact and "
                         "on onnxruntime's fast U8S8 kernels; s8: MatMulInteger(int8 x, int8 W) "
                         "literally (a much slower S8S8 path on x86 without AVX-VNNI-INT8)")
    ap.add_argument("--shared-rows", type=int, default=None, help="--shape: bsdp (default batch//4)")
    ap.add_argument("--shared-offset", type=int, default=None, help="--shape: offset (default batch//2)")
    ap.add_argument("--shared-weight", type=float, default=1.0, help="--shape: shared_input_weight")
    ap.add_argument("--no-shared", action="store_true", help="--shape: no shared_input")
    ap.add_argument("--group-list-type", type=int, choices=[0, 1], default=1,
                    help="--shape: 1 = counts (default), 0 = cumsum")
    ap.add_argument("--save-inputs", metavar="DIR", help="--shape: write a case directory (with expected.npy)")
    ap.add_argument("--check", action="store_true",
                    help="--shape: compare with the float64 reference (implied by --save-inputs)")
    ap.add_argument("--tol", type=float, default=1e-5, help="relative tolerance (default 1e-5)")
    ap.add_argument("--opt-level", choices=["disable", "basic", "extended", "all"], default="all",
                    help="onnxruntime graph optimization level (default all)")
    ap.add_argument("--save-model", metavar="PATH", help="write the ONNX graph that is run")
    ap.add_argument("--optimized-model", metavar="PATH", help="write onnxruntime's optimized graph")
    a = ap.parse_args(argv)
    if a.threads < 1 or a.repeat < 1:
        ap.error("--threads and --repeat must be >= 1")

    try:
        if a.case:
            prob = load_case(a.case)
        else:
            try:
                m, k, n, e, batch, topk = (int(v) for v in a.shape.split(","))
            except ValueError:
                ap.error("--shape takes six integers m,k,n,e,batch,topk")
            rows = 0 if a.no_shared else (batch // 4 if a.shared_rows is None else a.shared_rows)
            off = batch // 2 if a.shared_offset is None else a.shared_offset
            prob = generate(m, k, n, e, batch, topk, a.seed, rows, off, a.shared_weight,
                            a.group_list_type)
    except Skipped as ex:
        print(f"skipped: {a.case}: {ex}")
        print("status=skipped")
        return 0
    except Rejected as ex:
        print(f"rejected: {a.case or a.shape}: {ex}")
        print("status=rejected")
        return 2

    t0 = time.perf_counter()
    model, feeds = build_model(prob, a.combine, a.a_encoding)
    onnx.checker.check_model(model)
    if a.save_model:
        onnx.save(model, a.save_model)
    model_bytes = model.SerializeToString()
    ops = op_histogram(model)
    del model
    sess = make_session(model_bytes, a.threads, a.opt_level, a.optimized_model)
    del model_bytes
    build_s = time.perf_counter() - t0

    out = None
    for _ in range(WARMUP):
        out = sess.run(["out"], feeds)[0]
    times = []
    for _ in range(a.repeat):
        t = time.perf_counter()
        sess.run(["out"], feeds)
        times.append((time.perf_counter() - t) * 1e3)
    med, mn = float(np.median(times)), float(np.min(times))

    expected = prob.expected
    if a.shape and (a.check or a.save_inputs):
        expected = reference(prob)
        if a.save_inputs:
            save_case(prob, a.save_inputs, expected,
                      f"Generated by bench/ort_baseline.py --shape {a.shape} --seed {a.seed}: "
                      f"{prob.name}, counts={prob.counts.tolist()}, output_bs={prob.B}, "
                      f"shared_input={None if prob.shared_input is None else prob.shared_input.shape} "
                      f"at offset {prob.attrs['shared_input_offset']}. expected.npy: float64 numpy "
                      f"reference of SPEC 1.1 (f32 products, f64 accumulation).")

    env = " ".join(f"{v}={os.environ[v]}" for v in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
                   if v in os.environ) or "OPENBLAS_* unset"
    print(f"ORT unfused GMMFR A8W8 baseline [{prob.name}]: m={prob.m} k={prob.k} n={prob.n} "
          f"e={prob.e} active_rows={prob.M} output_bs={prob.B} "
          f"shared={None if prob.shared_input is None else prob.shared_input.shape[0]} "
          f"combine={a.combine} a={a.a_encoding} threads={a.threads} opt={a.opt_level}: median {med:.3f} ms, "
          f"min {mn:.3f} ms over {a.repeat} runs (build {build_s:.2f} s; onnxruntime "
          f"{ort.__version__}, numpy {np.__version__}, {env})")
    print(f"graph ops: {ops}")
    rc = 0
    if expected is not None:
        expected = np.asarray(expected, dtype=np.float32)
        if expected.shape != out.shape:
            print(f"expected shape {expected.shape} != output shape {out.shape}")
            print("status=FAIL")
            return 1
        err = float(np.abs(out.astype(np.float64) - expected.astype(np.float64)).max())
        mag = float(np.abs(expected.astype(np.float64)).max())
        rel = err / mag if mag > 0 else err
        ok = rel <= a.tol  # False for NaN
        print(f"max_abs_err={err:.6e} rel_err={rel:.6e} tol={a.tol:g} status={'ok' if ok else 'FAIL'}")
        rc = 0 if ok else 1
    print(f"ort_ms_median={med:.6f} ort_ms_min={mn:.6f} threads={a.threads} shape={prob.shape_str()}")
    sys.stdout.flush()
    return rc


if __name__ == "__main__":
    sys.exit(main())
