#!/usr/bin/env python3
"""Export PyTorch MoE spellings to torch-dialect MLIR fixtures for the gmmfr importer.

Usage:
    python tools/export_fixtures.py [--out tests/fixtures/torch] [--only NAME ...] [--list]

Every fixture NAME produces, under the output directory:

    NAME.mlir           torch_mlir.fx.export_and_import(..., output_type="raw", func_name="main"),
                        printed in generic form with locations; absolute paths are rewritten to
                        `site-packages/...` and repo-relative paths so the file is machine-independent.
    NAME/argI.npy       every function argument, in order (bf16 saved as exact f32 widening).
    NAME/expected.npy   PyTorch's own CPU output for those arguments (expectedI.npy for tuples).
    NAME/meta.json      name, kind, spelling, dtype, self_contained, tolerance, description,
                        expect (negatives), arg_names.

Everything is deterministic: each fixture seeds torch with a CRC of its own name.

export_and_import runs torch-mlir's default decomposition table, so the .mlir shows the
decomposed spelling (index_add -> index_put(accumulate=True), argsort -> sort.stable,
// -> div.Tensor_mode "floor", zeros -> empty_strided + full_like, silu -> x * sigmoid(x),
chunk -> split_with_sizes, transpose -> permute, flatten/reshape -> view).  ScalarType arguments
import as torch ScalarType codes (torch.float32 = 6, torch.bfloat16 = 15), not aclDataType codes.

The torch_npu ops are emulated on CPU with `torch.library` in the `npu` namespace, so the FX import
shows them as `torch.operator` with `name = "torch.npu.<op>"`.  The importer maps operands by
schema position, and the FX importer materialises *every* schema argument (defaults included) as
an operand, in schema order.  The schemas (also in NPU_SCHEMAS below, the single source of truth):

  npu_grouped_matmul(Tensor[] x, Tensor[] weight, *, Tensor[]? bias=None, Tensor[]? scale=None,
      Tensor[]? offset=None, Tensor[]? antiquant_scale=None, Tensor[]? antiquant_offset=None,
      Tensor[]? per_token_scale=None, Tensor? group_list=None, Tensor[]? activation_input=None,
      Tensor[]? activation_quant_scale=None, Tensor[]? activation_quant_offset=None,
      int? split_item=0, int? group_type=None, int? group_list_type=0, int? act_type=0,
      int[]? tuning_config=None, ScalarType? output_dtype=None) -> Tensor[]
  npu_moe_finalize_routing(Tensor expanded_permuted_rows, Tensor? skip1, Tensor? skip2,
      Tensor? bias, Tensor? scales, Tensor expanded_src_to_dst_row,
      Tensor? export_for_source_row, int? drop_pad_mode=0) -> Tensor
  npu_moe_init_routing_v2(Tensor x, Tensor expert_idx, *, Tensor? scale=None, Tensor? offset=None,
      int active_num=-1, int expert_capacity=-1, int expert_num=-1, int drop_pad_mode=0,
      int expert_tokens_num_type=0, bool expert_tokens_num_flag=False, int quant_mode=-1,
      int[2] active_expert_range=[], int row_idx_type=0) -> (Tensor, Tensor, Tensor, Tensor)
  npu_grouped_matmul_finalize_routing(Tensor x, Tensor w, Tensor group_list, *,
      Tensor? scale=None, Tensor? bias=None, Tensor? offset=None, Tensor? pertoken_scale=None,
      Tensor? shared_input=None, Tensor? logit=None, Tensor? row_index=None,
      ScalarType? dtype=None, float? shared_input_weight=1.0, int? shared_input_offset=0,
      int? output_bs=0, int? group_list_type=1, int[]? tuning_config=None) -> Tensor
  npu_format_cast(Tensor self, int acl_format) -> Tensor

Semantics follow ../shared/SPEC.md (sections 1-3).  The CPU emulations support the subset the
fixtures use and assert on anything else:
  * npu_grouped_matmul: single-tensor lists, split_item=3, group_type=0; group_list_type 0 =
    cumsum, 1 = counts.  int8 x/w + scale (f32 (e,n)) [+ per_token_scale f32 (m,)] -> bf16 (or
    output_dtype); int8 without scale -> int32 (exact); float -> same dtype.  Rows at/after
    sum(group_list) are zeros.  The weight is ND (e,k,n) or the 5-D NZ tensor of npu_format_cast
    (then n = n1*32, i.e. n must be a multiple of 32).
  * npu_moe_finalize_routing: drop_pad_mode 0 (reads src2dst at j*R+i) and 2 (reads i*K+j).
  * npu_moe_init_routing_v2: drop_pad_mode 0, quant_mode -1, every row active.  expanded_row_idx
    is int32: row_idx_type 0 -> src->dst inverse map (indexed by t*K+j), 1 -> gidx (stable argsort
    of the flattened expert ids).  expert_tokens int64 (E,): type 1 counts, type 0 cumsum.
    expanded_scale f32 (T*K,): scale[gidx // K] when scale is given, else zeros.
  * npu_grouped_matmul_finalize_routing: SPEC 1.1 (A8W8, ND or NZ weight), f32 output.
  * npu_format_cast: 29 (FRACTAL_NZ) on int8 (e,k,n) -> (e, ceil(n/32), ceil(k/16), 16, 32)
    (SPEC 3); any other format is an identity copy.

Needs torch, transformers and torch-mlir (see README.md, "Torch fixtures").  CI does not run it.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import sysconfig
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn as nn

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO_ROOT / "tests" / "fixtures" / "torch"

# ---------------------------------------------------------------------------------------------
# torch_npu-style custom ops
# ---------------------------------------------------------------------------------------------

# The one table of schemas.  The Rust importer maps torch.operator operands by these positions.
NPU_SCHEMAS = {
    "npu_grouped_matmul": (
        "npu_grouped_matmul(Tensor[] x, Tensor[] weight, *, Tensor[]? bias=None, "
        "Tensor[]? scale=None, Tensor[]? offset=None, Tensor[]? antiquant_scale=None, "
        "Tensor[]? antiquant_offset=None, Tensor[]? per_token_scale=None, "
        "Tensor? group_list=None, Tensor[]? activation_input=None, "
        "Tensor[]? activation_quant_scale=None, Tensor[]? activation_quant_offset=None, "
        "int? split_item=0, int? group_type=None, int? group_list_type=0, int? act_type=0, "
        "int[]? tuning_config=None, ScalarType? output_dtype=None) -> Tensor[]"
    ),
    "npu_moe_finalize_routing": (
        "npu_moe_finalize_routing(Tensor expanded_permuted_rows, Tensor? skip1, Tensor? skip2, "
        "Tensor? bias, Tensor? scales, Tensor expanded_src_to_dst_row, "
        "Tensor? export_for_source_row, int? drop_pad_mode=0) -> Tensor"
    ),
    "npu_moe_init_routing_v2": (
        "npu_moe_init_routing_v2(Tensor x, Tensor expert_idx, *, Tensor? scale=None, "
        "Tensor? offset=None, int active_num=-1, int expert_capacity=-1, int expert_num=-1, "
        "int drop_pad_mode=0, int expert_tokens_num_type=0, bool expert_tokens_num_flag=False, "
        "int quant_mode=-1, int[2] active_expert_range=[], int row_idx_type=0) "
        "-> (Tensor, Tensor, Tensor, Tensor)"
    ),
    "npu_grouped_matmul_finalize_routing": (
        "npu_grouped_matmul_finalize_routing(Tensor x, Tensor w, Tensor group_list, *, "
        "Tensor? scale=None, Tensor? bias=None, Tensor? offset=None, "
        "Tensor? pertoken_scale=None, Tensor? shared_input=None, Tensor? logit=None, "
        "Tensor? row_index=None, ScalarType? dtype=None, float? shared_input_weight=1.0, "
        "int? shared_input_offset=0, int? output_bs=0, int? group_list_type=1, "
        "int[]? tuning_config=None) -> Tensor"
    ),
    "npu_format_cast": "npu_format_cast(Tensor self, int acl_format) -> Tensor",
}

ACL_FORMAT_FRACTAL_NZ = 29

# torch_mlir.fx.export_and_import applies torch-mlir's default decomposition table, which
# respells several ops; recorded in meta.json "notes" of the fixtures it affects.
DECOMP_NOTE = (
    "imported after torch-mlir's default decompositions: index_add -> index_put(accumulate=True), "
    "argsort(stable) -> sort.stable, // -> div.Tensor_mode(floor), zeros -> empty_strided + "
    "full_like, flatten -> view")


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def _counts_from_group_list(group_list: torch.Tensor, group_list_type: int) -> list[int]:
    """Rows per group: type 1 = counts, type 0 = inclusive prefix sums (SPEC 1.1 / 2.1)."""
    gl = [int(v) for v in group_list.tolist()]
    if group_list_type == 1:
        return gl
    assert group_list_type == 0, f"group_list_type {group_list_type} not emulated"
    return [gl[0]] + [gl[i] - gl[i - 1] for i in range(1, len(gl))]


def _nz_to_nd(w: torch.Tensor, k: int) -> torch.Tensor:
    """Inverse of SPEC 3: (e, n1, k1, 16, 32) -> logical (e, k, n1*32), padding rows of k dropped."""
    e, n1, k1, k0, n0 = w.shape
    nd = w.permute(0, 2, 3, 1, 4).reshape(e, k1 * k0, n1 * n0)
    return nd[:, :k, :]


def _logical_weight(w: torch.Tensor, k: int) -> torch.Tensor:
    if w.dim() == 5:
        return _nz_to_nd(w, k)
    assert w.dim() == 3, f"weight must be ND (e,k,n) or NZ 5-D, got {tuple(w.shape)}"
    return w


def _weight_n(w: torch.Tensor) -> int:
    return w.shape[1] * w.shape[4] if w.dim() == 5 else w.shape[2]


def _exact_int_matmul(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """int8 x int8 with exact int32 accumulation (done in int64, then narrowed)."""
    return (a.to(torch.int64) @ b.to(torch.int64)).to(torch.int32)


# --- npu_grouped_matmul ------------------------------------------------------------------------


def _gmm_out_dtype(x, scale, output_dtype):
    if output_dtype is not None:
        return output_dtype
    if x.dtype == torch.int8:
        return torch.int32 if scale is None else torch.bfloat16
    return x.dtype


def _gmm_check(x, weight, split_item, group_type):
    assert len(x) == 1 and len(weight) == 1, "only single-tensor lists are emulated"
    assert split_item == 3 and group_type == 0, "only split_item=3, group_type=0 are emulated"


def npu_grouped_matmul_cpu(x, weight, *, bias=None, scale=None, offset=None, antiquant_scale=None,
                           antiquant_offset=None, per_token_scale=None, group_list=None,
                           activation_input=None, activation_quant_scale=None,
                           activation_quant_offset=None, split_item=0, group_type=None,
                           group_list_type=0, act_type=0, tuning_config=None, output_dtype=None):
    _gmm_check(x, weight, split_item, group_type)
    assert offset is None and antiquant_scale is None and antiquant_offset is None
    assert activation_input is None and act_type in (0, None)
    xs, ws = x[0], _logical_weight(weight[0], x[0].shape[1])
    sc = scale[0] if scale is not None else None
    pts = per_token_scale[0] if per_token_scale is not None else None
    b = bias[0] if bias is not None else None
    out_dtype = _gmm_out_dtype(xs, sc, output_dtype)
    m, n = xs.shape[0], ws.shape[2]
    out = torch.zeros(m, n, dtype=out_dtype)  # rows at/after sum(group_list) stay zero
    counts = _counts_from_group_list(group_list, group_list_type)
    start = 0
    for g, c in enumerate(counts):
        if c == 0:
            continue
        rows = slice(start, start + c)
        if xs.dtype == torch.int8:
            acc = _exact_int_matmul(xs[rows], ws[g])
            if sc is None:
                y = acc if b is None else acc + b[g].to(torch.int32)
            else:
                y = acc.to(torch.float32) * sc[g].to(torch.float32)
                if pts is not None:
                    y = y * pts[rows].to(torch.float32)[:, None]
                if b is not None:
                    y = y + b[g].to(torch.float32)
        else:
            y = xs[rows] @ ws[g].to(xs.dtype)
            if b is not None:
                y = y + b[g].to(xs.dtype)
        out[rows] = y.to(out_dtype)
        start += c
    return [out]


def npu_grouped_matmul_fake(x, weight, *, bias=None, scale=None, offset=None, antiquant_scale=None,
                            antiquant_offset=None, per_token_scale=None, group_list=None,
                            activation_input=None, activation_quant_scale=None,
                            activation_quant_offset=None, split_item=0, group_type=None,
                            group_list_type=0, act_type=0, tuning_config=None, output_dtype=None):
    _gmm_check(x, weight, split_item, group_type)
    sc = scale[0] if scale is not None else None
    out_dtype = _gmm_out_dtype(x[0], sc, output_dtype)
    return [x[0].new_empty((x[0].shape[0], _weight_n(weight[0])), dtype=out_dtype)]


# --- npu_moe_finalize_routing -------------------------------------------------------------------


def _mfr_dims(expanded_src_to_dst_row, scales, export_for_source_row):
    if scales is not None:
        return scales.shape[0], scales.shape[1]
    assert export_for_source_row is not None, "need scales or export_for_source_row to know K"
    return export_for_source_row.shape[0], export_for_source_row.shape[1]


def npu_moe_finalize_routing_cpu(expanded_permuted_rows, skip1, skip2, bias, scales,
                                 expanded_src_to_dst_row, export_for_source_row, drop_pad_mode=0):
    assert drop_pad_mode in (0, 2), "only drop_pad_mode 0 and 2 are emulated"
    r, k = _mfr_dims(expanded_src_to_dst_row, scales, export_for_source_row)
    h = expanded_permuted_rows.shape[1]
    out = torch.zeros(r, h, dtype=torch.float32)
    for skip in (skip1, skip2):
        if skip is not None:
            out += skip.to(torch.float32)
    rows = expanded_permuted_rows.to(torch.float32)
    src = expanded_src_to_dst_row.to(torch.int64)
    tok = torch.arange(r)
    for j in range(k):
        pos = j * r + tok if drop_pad_mode == 0 else tok * k + j
        y = rows[src[pos]]
        if bias is not None:
            y = y + bias.to(torch.float32)[export_for_source_row[:, j].to(torch.int64)]
        s = scales[:, j].to(torch.float32)[:, None] if scales is not None else 1.0
        out += s * y
    return out.to(expanded_permuted_rows.dtype)


def npu_moe_finalize_routing_fake(expanded_permuted_rows, skip1, skip2, bias, scales,
                                  expanded_src_to_dst_row, export_for_source_row, drop_pad_mode=0):
    r, _ = _mfr_dims(expanded_src_to_dst_row, scales, export_for_source_row)
    return expanded_permuted_rows.new_empty((r, expanded_permuted_rows.shape[1]))


# --- npu_moe_init_routing_v2 --------------------------------------------------------------------


def _init_routing_check(x, expert_idx, active_num, expert_capacity, expert_num, drop_pad_mode,
                        quant_mode, active_expert_range):
    t, k = expert_idx.shape
    assert x.shape[0] == t and expert_num > 0
    assert active_num in (-1, 0) or active_num >= t * k, "every row must be active"
    assert drop_pad_mode == 0 and quant_mode == -1 and expert_capacity in (-1, 0)
    assert list(active_expert_range) in ([], [0, expert_num])


def npu_moe_init_routing_v2_cpu(x, expert_idx, *, scale=None, offset=None, active_num=-1,
                                expert_capacity=-1, expert_num=-1, drop_pad_mode=0,
                                expert_tokens_num_type=0, expert_tokens_num_flag=False,
                                quant_mode=-1, active_expert_range=(), row_idx_type=0):
    _init_routing_check(x, expert_idx, active_num, expert_capacity, expert_num, drop_pad_mode,
                        quant_mode, active_expert_range)
    t, k = expert_idx.shape
    flat = expert_idx.reshape(-1).to(torch.int64)
    gidx = torch.argsort(flat, stable=True)            # permuted row p <- source t*K+j
    expanded_x = x[gidx // k].clone()
    counts = torch.bincount(flat, minlength=expert_num)[:expert_num].to(torch.int64)
    expert_tokens = counts if expert_tokens_num_type == 1 else torch.cumsum(counts, 0)
    if row_idx_type == 1:
        row_idx = gidx.to(torch.int32)
    else:
        inv = torch.empty_like(gidx)
        inv[gidx] = torch.arange(t * k)                # source t*K+j -> permuted row p
        row_idx = inv.to(torch.int32)
    if scale is not None:
        expanded_scale = scale.to(torch.float32).reshape(-1)[gidx // k]
    else:
        expanded_scale = torch.zeros(t * k, dtype=torch.float32)
    return expanded_x, row_idx, expert_tokens, expanded_scale


def npu_moe_init_routing_v2_fake(x, expert_idx, *, scale=None, offset=None, active_num=-1,
                                 expert_capacity=-1, expert_num=-1, drop_pad_mode=0,
                                 expert_tokens_num_type=0, expert_tokens_num_flag=False,
                                 quant_mode=-1, active_expert_range=(), row_idx_type=0):
    t, k = expert_idx.shape
    return (
        x.new_empty((t * k, x.shape[1])),
        x.new_empty((t * k,), dtype=torch.int32),
        x.new_empty((expert_num,), dtype=torch.int64),
        x.new_empty((t * k,), dtype=torch.float32),
    )


# --- npu_grouped_matmul_finalize_routing (GMMFR) ------------------------------------------------


def _gmmfr_out_rows(x, output_bs):
    return output_bs if output_bs else x.shape[0]


def npu_gmmfr_cpu(x, w, group_list, *, scale=None, bias=None, offset=None, pertoken_scale=None,
                  shared_input=None, logit=None, row_index=None, dtype=None,
                  shared_input_weight=1.0, shared_input_offset=0, output_bs=0, group_list_type=1,
                  tuning_config=None):
    """SPEC 1.1 (A8W8) with the SPEC 1.4 bf16 bias; out rows added in increasing p."""
    assert x.dtype == torch.int8 and w.dtype == torch.int8 and offset is None
    assert dtype in (None, torch.float32)
    wl = _logical_weight(w, x.shape[1])
    n = wl.shape[2]
    out = torch.zeros(_gmmfr_out_rows(x, output_bs), n, dtype=torch.float32)
    if shared_input is not None:
        off, bsdp = shared_input_offset or 0, shared_input.shape[0]
        out[off:off + bsdp] = shared_input.to(torch.float32) * shared_input_weight
    start = 0
    for g, c in enumerate(_counts_from_group_list(group_list, group_list_type)):
        rows = slice(start, start + c)
        y = _exact_int_matmul(x[rows], wl[g]).to(torch.float32) * scale[g].to(torch.float32)
        fac = torch.ones(c, dtype=torch.float32)
        if pertoken_scale is not None:
            fac = pertoken_scale[rows].to(torch.float32)
        if logit is not None:
            fac = fac * logit[rows].to(torch.float32)       # pts * logit formed first
        y = y * fac[:, None]
        if bias is not None:
            lg = logit[rows] if logit is not None else torch.ones(c)
            y = y + lg.to(torch.float32)[:, None] * bias[g].to(torch.float32)
        dst = row_index[rows].to(torch.int64) if row_index is not None else torch.arange(c) + start
        for p in range(c):                                     # deterministic, increasing p
            out[dst[p]] += y[p]
        start += c
    return out


def npu_gmmfr_fake(x, w, group_list, *, scale=None, bias=None, offset=None, pertoken_scale=None,
                   shared_input=None, logit=None, row_index=None, dtype=None,
                   shared_input_weight=1.0, shared_input_offset=0, output_bs=0, group_list_type=1,
                   tuning_config=None):
    return x.new_empty((_gmmfr_out_rows(x, output_bs), _weight_n(w)), dtype=torch.float32)


# --- npu_format_cast ----------------------------------------------------------------------------


def _nz_shape(shape):
    e, k, n = shape
    return (e, _ceil_div(n, 32), _ceil_div(k, 16), 16, 32)


def npu_format_cast_cpu(self, acl_format):
    if acl_format != ACL_FORMAT_FRACTAL_NZ:
        return self.clone()
    assert self.dtype == torch.int8 and self.dim() == 3, "NZ emulated for int8 (e,k,n) only"
    e, k, n = self.shape
    _, n1, k1, _, _ = _nz_shape(self.shape)
    padded = torch.zeros(e, k1 * 16, n1 * 32, dtype=self.dtype)
    padded[:, :k, :n] = self
    # W_nz[g, nn // 32, kk // 16, kk % 16, nn % 32] = W[g][kk, nn]
    return padded.reshape(e, k1, 16, n1, 32).permute(0, 3, 1, 2, 4).contiguous()


def npu_format_cast_fake(self, acl_format):
    if acl_format != ACL_FORMAT_FRACTAL_NZ:
        return torch.empty_like(self)
    return self.new_empty(_nz_shape(self.shape))


_NPU_IMPLS = {
    "npu_grouped_matmul": (npu_grouped_matmul_cpu, npu_grouped_matmul_fake),
    "npu_moe_finalize_routing": (npu_moe_finalize_routing_cpu, npu_moe_finalize_routing_fake),
    "npu_moe_init_routing_v2": (npu_moe_init_routing_v2_cpu, npu_moe_init_routing_v2_fake),
    "npu_grouped_matmul_finalize_routing": (npu_gmmfr_cpu, npu_gmmfr_fake),
    "npu_format_cast": (npu_format_cast_cpu, npu_format_cast_fake),
}

_NPU_LIB = None


def register_npu_ops() -> None:
    """Define the npu:: ops once (schema, CPU kernel, fake kernel for torch.export)."""
    global _NPU_LIB
    if _NPU_LIB is not None:
        return
    _NPU_LIB = torch.library.Library("npu", "DEF")
    for name, schema in NPU_SCHEMAS.items():
        cpu, fake = _NPU_IMPLS[name]
        _NPU_LIB.define(schema)
        _NPU_LIB.impl(name, cpu, "CPU")
        torch.library.register_fake(f"npu::{name}", fake, lib=_NPU_LIB)


# ---------------------------------------------------------------------------------------------
# Fixture plumbing
# ---------------------------------------------------------------------------------------------


@dataclass
class Fixture:
    """What one fixture function returns."""

    module: nn.Module
    args: list[torch.Tensor]
    arg_names: list[str]
    kind: str                       # "positive" | "negative"
    spelling: str
    dtype: str                      # "f32" | "bf16"
    self_contained: bool
    description: str
    expect: str | None = None       # negatives: why it must not fuse
    notes: list[str] = field(default_factory=list)


class Functional(nn.Module):
    """Calls `inner` through torch.func.functional_call with its parameters passed as trailing
    forward arguments, so the export holds no parameters and no `torch.vtensor.literal`."""

    def __init__(self, inner: nn.Module, n_inputs: int):
        super().__init__()
        object.__setattr__(self, "_inner", inner)      # deliberately not a registered submodule
        self.param_names = [n for n, _ in inner.named_parameters()]
        assert not list(inner.buffers()), "inner module must have no buffers"
        self.n_inputs = n_inputs

    def forward(self, *args):
        inputs, params = args[: self.n_inputs], args[self.n_inputs:]
        return torch.func.functional_call(self._inner, dict(zip(self.param_names, params)), inputs)


def seed_for(name: str) -> None:
    torch.manual_seed(zlib.crc32(name.encode()) & 0x7FFFFFFF)


def topk_routing(t: int, e: int, k: int, dtype=torch.float32):
    """Real top-k of a random router score: ids int64 (T,K) with distinct experts per token,
    weights (T,K) renormalised to sum 1 per token."""
    probs = torch.softmax(torch.randn(t, e), dim=-1)
    w, ids = torch.topk(probs, k, dim=-1)
    w = w / w.sum(dim=-1, keepdim=True)
    return ids.to(torch.int64), w.to(dtype)


def rand_i8(*shape, lo=-8, hi=8):
    return torch.randint(lo, hi, shape, dtype=torch.int8)


def pos_scale(*shape, base=0.01):
    return torch.rand(*shape) * base + base / 2


# ---------------------------------------------------------------------------------------------
# Positive fixtures: torch_npu spellings
# ---------------------------------------------------------------------------------------------


def fx_npu_a8w8_mode2() -> Fixture:
    t, k_top, e, hdim, n = 8, 2, 4, 48, 32          # GMM k = 48 (k1 = 3), n = 32 (n1 = 1)

    class Module(nn.Module):
        def forward(self, x, topk_ids, topk_w, w, scale, pertoken_scale):
            # torchair / vllm-ascend style dispatch -> GMM -> combine
            expanded_x, src2dst, expert_tokens, _ = torch.ops.npu.npu_moe_init_routing_v2(
                x, topk_ids.to(torch.int32), active_num=t * k_top, expert_num=e,
                expert_tokens_num_type=1, expert_tokens_num_flag=True, row_idx_type=0)
            w_nz = torch.ops.npu.npu_format_cast(w, ACL_FORMAT_FRACTAL_NZ)
            y = torch.ops.npu.npu_grouped_matmul(
                [expanded_x], [w_nz], scale=[scale], per_token_scale=[pertoken_scale],
                group_list=expert_tokens, split_item=3, group_type=0, group_list_type=1,
                output_dtype=torch.bfloat16)[0]
            return torch.ops.npu.npu_moe_finalize_routing(
                y, None, None, None, topk_w, src2dst, None, drop_pad_mode=2)

    ids, tw = topk_routing(t, e, k_top)
    args = [rand_i8(t, hdim), ids, tw, rand_i8(e, hdim, n), pos_scale(e, n),
            pos_scale(t * k_top, base=0.1)]
    return Fixture(
        Module(), args, ["x", "topk_ids", "topk_weights", "w", "scale", "pertoken_scale"],
        "positive", "npu_moe_init_routing_v2(row_idx_type=0) + npu_format_cast(29) + "
        "npu_grouped_matmul(int8, scale, per_token_scale, counts, bf16) + "
        "npu_moe_finalize_routing(drop_pad_mode=2)", "bf16", True,
        "A8W8 torchair pipeline: GMM with NZ weight and per-token dequant to bf16, then MFR mode 2 "
        "with the src->dst inverse map and the topk weights as scales.")


def fx_npu_float_mode0() -> Fixture:
    t, k_top, e, h, n = 6, 3, 5, 24, 40

    class Module(nn.Module):
        def forward(self, x, topk_ids, topk_w, w):
            expanded_x, inv, expert_tokens, _ = torch.ops.npu.npu_moe_init_routing_v2(
                x, topk_ids.to(torch.int32), active_num=t * k_top, expert_num=e,
                expert_tokens_num_type=0, expert_tokens_num_flag=True, row_idx_type=0)
            # MFR mode 0 reads src2dst at j*R + i: the (t*K + j)-indexed inverse map, transposed.
            src2dst = inv.view(t, k_top).transpose(0, 1).contiguous().view(-1)
            y = torch.ops.npu.npu_grouped_matmul(
                [expanded_x], [w], group_list=expert_tokens, split_item=3, group_type=0,
                group_list_type=0)[0]
            return torch.ops.npu.npu_moe_finalize_routing(
                y, None, None, None, topk_w, src2dst, None, drop_pad_mode=0)

    ids, tw = topk_routing(t, e, k_top)
    args = [torch.randn(t, h), ids, tw, torch.randn(e, h, n) * 0.1]
    return Fixture(
        Module(), args, ["x", "topk_ids", "topk_weights", "w"],
        "positive", "npu_moe_init_routing_v2(row_idx_type=0, cumsum) + npu_grouped_matmul(f32, "
        "cumsum) + inverse map transposed + npu_moe_finalize_routing(drop_pad_mode=0)", "f32", True,
        "Non-quantized f32 GMM (cumsum group_list) followed by MFR mode 0 whose src2dst is the "
        "init_routing inverse map transposed to slot-major order.")


def fx_npu_gmmfr_direct() -> Fixture:
    t, k_top, e, hdim, n = 10, 2, 6, 32, 64          # k1 = 2, n1 = 2

    class Module(nn.Module):
        def forward(self, x, topk_ids, topk_w, w, scale, pertoken_scale):
            expanded_x, gidx, expert_tokens, _ = torch.ops.npu.npu_moe_init_routing_v2(
                x, topk_ids.to(torch.int32), active_num=t * k_top, expert_num=e,
                expert_tokens_num_type=1, expert_tokens_num_flag=True, row_idx_type=1)
            gidx64 = gidx.to(torch.int64)
            row_index = gidx64 // k_top
            logit = topk_w.flatten()[gidx64]
            w_nz = torch.ops.npu.npu_format_cast(w, ACL_FORMAT_FRACTAL_NZ)
            return torch.ops.npu.npu_grouped_matmul_finalize_routing(
                expanded_x, w_nz, expert_tokens, scale=scale, pertoken_scale=pertoken_scale,
                logit=logit, row_index=row_index, dtype=torch.float32, output_bs=t,
                group_list_type=1)

    ids, tw = topk_routing(t, e, k_top)
    args = [rand_i8(t, hdim), ids, tw, rand_i8(e, hdim, n), pos_scale(e, n),
            pos_scale(t * k_top, base=0.1)]
    return Fixture(
        Module(), args, ["x", "topk_ids", "topk_weights", "w", "scale", "pertoken_scale"],
        "positive", "npu_moe_init_routing_v2(row_idx_type=1) + row_index = gidx // K + "
        "logit = topk_w.flatten()[gidx] + npu_format_cast(29) + "
        "npu_grouped_matmul_finalize_routing", "f32", True,
        "Direct A8W8 GMMFR call (NZ weight, counts) with row_index/logit derived from the gidx of "
        "init_routing row_idx_type 1; already fused, must be recognised as GMMFR.")


def fx_quant_a8w8_int32_dequant() -> Fixture:
    t, k_top, e, hdim, n = 7, 2, 4, 32, 24

    class Module(nn.Module):
        def forward(self, x, topk_ids, topk_w, w, scale, pertoken_scale):
            flat = topk_ids.flatten()
            perm = torch.argsort(flat, stable=True)
            token_idx = perm // k_top
            sorted_ids = flat[perm]
            x_sorted = x[token_idx]
            w_sorted = topk_w.flatten()[perm]
            counts = torch.histc(sorted_ids.float(), bins=e, min=0, max=e - 1)
            group_list = torch.cumsum(counts, 0, dtype=torch.int64)
            acc = torch.ops.npu.npu_grouped_matmul(
                [x_sorted], [w], group_list=group_list, split_item=3, group_type=0,
                group_list_type=0)[0]                                              # int32
            y = acc.to(torch.float32) * scale[sorted_ids] * pertoken_scale[:, None]
            weighted = y * w_sorted[:, None]
            return torch.zeros(t, n, dtype=torch.float32).index_add(0, token_idx, weighted)

    ids, tw = topk_routing(t, e, k_top)
    args = [rand_i8(t, hdim), ids, tw, rand_i8(e, hdim, n), pos_scale(e, n),
            pos_scale(t * k_top, base=0.1)]
    return Fixture(
        Module(), args, ["x", "topk_ids", "topk_weights", "w", "scale", "pertoken_scale"],
        "positive", "argsort(stable) + x[perm // K] + histc/cumsum + npu_grouped_matmul(int8, no "
        "scale -> int32) + .to(f32) * scale[sorted_ids] * pertoken_scale[:, None] * w_sorted + "
        "zeros.index_add", "f32", True,
        "Quantized spelling with the dequant written in aten after an int32 GMM (ND weight, "
        "cumsum), weighted by the sorted router weights and combined with index_add.",
        notes=[DECOMP_NOTE])


def fx_quant_a8w8_weight_in_pertoken() -> Fixture:
    t, k_top, e, hdim, n = 6, 2, 4, 32, 16

    class Module(nn.Module):
        def forward(self, x, topk_ids, topk_w, w, scale, pertoken_scale):
            flat = topk_ids.flatten()
            perm = torch.argsort(flat, stable=True)
            token_idx = perm // k_top
            sorted_ids = flat[perm]
            x_sorted = x[token_idx]
            w_sorted = topk_w.flatten()[perm]
            group_list = torch.cumsum(torch.bincount(sorted_ids, minlength=e), 0)
            acc = torch.ops.npu.npu_grouped_matmul(
                [x_sorted], [w], group_list=group_list, split_item=3, group_type=0,
                group_list_type=0)[0]                                              # int32
            # The router weight folded into the per-token scale before the broadcast.
            out = acc.to(torch.float32) * scale[sorted_ids] * (pertoken_scale * w_sorted)[:, None]
            return torch.zeros(t, n).scatter_add(0, token_idx[:, None].expand(-1, n), out)

    ids, tw = topk_routing(t, e, k_top)
    args = [rand_i8(t, hdim), ids, tw, rand_i8(e, hdim, n), pos_scale(e, n),
            pos_scale(t * k_top, base=0.1)]
    return Fixture(
        Module(), args, ["x", "topk_ids", "topk_weights", "w", "scale", "pertoken_scale"],
        "positive", "argsort(stable) + x[perm // K] + bincount/cumsum + npu_grouped_matmul(int8 -> "
        "int32) + .to(f32) * scale[sorted_ids] * (pertoken_scale * w_sorted)[:, None] + "
        "zeros.scatter_add", "f32", True,
        "Quantized spelling with the router weight folded into the per-token scale, combined "
        "with scatter_add.",
        notes=[DECOMP_NOTE])


# ---------------------------------------------------------------------------------------------
# Positive fixtures: torchtitan-style plain aten
# ---------------------------------------------------------------------------------------------


class TitanDispatch(nn.Module):
    """torchtitan-style token dispatch + one grouped matmul (a parameter-free submodule, so the
    exported locations point at these lines).  Returns (token_idx, expert rows in sorted order,
    router weights in sorted order)."""

    def __init__(self, e: int, k_top: int, counts_via: str = "bincount"):
        super().__init__()
        self.e, self.k_top, self.counts_via = e, k_top, counts_via

    def forward(self, x, topk_ids, topk_w, w):
        flat = topk_ids.flatten()
        perm = torch.argsort(flat, stable=True)
        token_idx = perm // self.k_top
        x_sorted = x[token_idx]
        if self.counts_via == "bincount":
            counts = torch.bincount(flat, minlength=self.e)
        else:
            counts = torch.histc(flat.float(), bins=self.e, min=0, max=self.e - 1)
        offsets = torch.cumsum(counts, 0).to(torch.int32)
        out_sorted = torch._grouped_mm(x_sorted, w, offs=offsets)
        w_sorted = topk_w.flatten()[perm]
        return token_idx, out_sorted, w_sorted


_TITAN_SHAPES = dict(t=7, k_top=2, e=4, h=16, n=24)


def _titan_args(t, k_top, e, h, n):
    ids, tw = topk_routing(t, e, k_top)
    return [torch.randn(t, h), ids, tw, torch.randn(e, h, n) * 0.1]


_TITAN_NAMES = ["x", "topk_ids", "topk_weights", "w"]


def fx_titan_index_add_f32() -> Fixture:
    s = _TITAN_SHAPES

    class Module(nn.Module):
        def __init__(self):
            super().__init__()
            self.dispatch = TitanDispatch(s["e"], s["k_top"])

        def forward(self, x, topk_ids, topk_w, w):
            token_idx, out_sorted, w_sorted = self.dispatch(x, topk_ids, topk_w, w)
            weighted = out_sorted * w_sorted[:, None]
            return torch.zeros(s["t"], s["n"]).index_add(0, token_idx, weighted)

    args = _titan_args(**s)
    return Fixture(
        Module(), args, _TITAN_NAMES, "positive",
        "argsort(stable) + x[perm // K] + bincount/cumsum int32 + aten._grouped_mm + "
        "* w_sorted[:, None] + zeros.index_add", "f32", True,
        "torchtitan-style dispatch with aten._grouped_mm, router weight applied per sorted row, "
        "combined with index_add.",
        notes=[DECOMP_NOTE, "bincount has a data-dependent length: it imports as "
               "vtensor<[?],si64> followed by aten._assert_scalar checks on its size"])


def fx_titan_router_index_add_f32() -> Fixture:
    """The same layer with its router in the graph: logits, softmax, topk (renormalized)."""
    s = _TITAN_SHAPES

    class Module(nn.Module):
        def __init__(self):
            super().__init__()
            self.dispatch = TitanDispatch(s["e"], s["k_top"])

        def forward(self, x, gate, w):
            probs = torch.softmax(x @ gate.t(), dim=-1)
            topk_w, topk_ids = torch.topk(probs, s["k_top"], dim=-1)
            topk_w = topk_w / topk_w.sum(dim=-1, keepdim=True)
            token_idx, out_sorted, w_sorted = self.dispatch(x, topk_ids, topk_w, w)
            weighted = out_sorted * w_sorted[:, None]
            return torch.zeros(s["t"], s["n"]).index_add(0, token_idx, weighted)

    x, _, _, w = _titan_args(**s)
    gate = torch.randn(s["e"], s["h"])
    return Fixture(
        Module(), [x, gate, w], ["x", "gate", "w"], "positive",
        "router (x @ gate.T, softmax, topk, renormalize) + argsort(stable) + x[perm // K] + "
        "bincount/cumsum int32 + aten._grouped_mm + * w_sorted[:, None] + zeros.index_add", "f32", True,
        "torchtitan-style layer with its router in the graph (softmax + topk), combined with "
        "index_add.",
        notes=[DECOMP_NOTE])


def fx_titan_scatter_add_f32() -> Fixture:
    s = dict(_TITAN_SHAPES, t=9, e=6, k_top=3, h=32, n=16)

    class Module(nn.Module):
        def __init__(self):
            super().__init__()
            self.dispatch = TitanDispatch(s["e"], s["k_top"], counts_via="histc")

        def forward(self, x, topk_ids, topk_w, w):
            token_idx, out_sorted, w_sorted = self.dispatch(x, topk_ids, topk_w, w)
            weighted = out_sorted * w_sorted[:, None]
            index = token_idx[:, None].expand(-1, s["n"])
            return torch.zeros(s["t"], s["n"]).scatter_add(0, index, weighted)

    args = _titan_args(**s)
    return Fixture(
        Module(), args, _TITAN_NAMES, "positive",
        "argsort(stable) + x[perm // K] + histc/cumsum int32 + aten._grouped_mm + "
        "* w_sorted[:, None] + zeros.scatter_add(expanded token index)", "f32", True,
        "torchtitan-style dispatch (histc counts) combined with scatter_add over the token index "
        "expanded to (T*K, n).",
        notes=[DECOMP_NOTE])


def fx_titan_index_put_f32() -> Fixture:
    s = dict(_TITAN_SHAPES, t=5, e=8, k_top=2, h=20, n=12)

    class Module(nn.Module):
        def __init__(self):
            super().__init__()
            self.dispatch = TitanDispatch(s["e"], s["k_top"], counts_via="histc")

        def forward(self, x, topk_ids, topk_w, w):
            token_idx, out_sorted, w_sorted = self.dispatch(x, topk_ids, topk_w, w)
            weighted = out_sorted * w_sorted[:, None]
            return torch.zeros(s["t"], s["n"]).index_put((token_idx,), weighted, accumulate=True)

    args = _titan_args(**s)
    return Fixture(
        Module(), args, _TITAN_NAMES, "positive",
        "argsort(stable) + x[perm // K] + histc/cumsum int32 + aten._grouped_mm + "
        "* w_sorted[:, None] + zeros.index_put(accumulate=True)", "f32", True,
        "torchtitan-style dispatch (histc counts) combined with index_put(accumulate=True).",
        notes=[DECOMP_NOTE])


# ---------------------------------------------------------------------------------------------
# Negative fixtures
# ---------------------------------------------------------------------------------------------


def fx_neg_nonlinear_between() -> Fixture:
    s = _TITAN_SHAPES

    class Module(nn.Module):
        def __init__(self):
            super().__init__()
            self.dispatch = TitanDispatch(s["e"], s["k_top"])

        def forward(self, x, topk_ids, topk_w, w):
            token_idx, out_sorted, w_sorted = self.dispatch(x, topk_ids, topk_w, w)
            weighted = torch.relu(out_sorted) * w_sorted[:, None]
            return torch.zeros(s["t"], s["n"]).index_add(0, token_idx, weighted)

    args = _titan_args(**s)
    return Fixture(
        Module(), args, _TITAN_NAMES, "negative",
        "titan_index_add_f32 with relu between aten._grouped_mm and the router-weight multiply",
        "f32", True,
        "A nonlinearity (relu) sits between the grouped matmul and the weighted combine.",
        expect="GMMFR scales the raw grouped-matmul rows; relu(y) * w is not linear in y, so the "
        "combine cannot be folded into the matmul epilogue.")


def fx_neg_weight_after_sum() -> Fixture:
    s = dict(_TITAN_SHAPES, t=6, e=4, k_top=2, h=16, n=16)

    class Module(nn.Module):
        def forward(self, x, topk_ids, topk_w, w):
            flat = topk_ids.flatten()
            perm = torch.argsort(flat, stable=True)
            x_sorted = x[perm // s["k_top"]]
            offsets = torch.cumsum(torch.bincount(flat, minlength=s["e"]), 0).to(torch.int32)
            out_sorted = torch._grouped_mm(x_sorted, w, offs=offsets)
            inv = torch.argsort(perm)                                   # a true inverse permutation
            per_slot = out_sorted[inv].view(s["t"], s["k_top"], s["n"])
            return per_slot.sum(dim=1) * topk_w.sum(dim=1, keepdim=True)

    args = _titan_args(**s)
    return Fixture(
        Module(), args, _TITAN_NAMES, "negative",
        "aten._grouped_mm + gather-back with argsort(perm) + view(T,K,n).sum(1) * "
        "topk_w.sum(1, keepdim=True)", "f32", True,
        "The router weight is applied after summing the K slots, as the per-token weight sum.",
        expect="sum_j(y_j) * sum_j(w_j) != sum_j(w_j * y_j); the per-slot weighting GMMFR applies "
        "(logit per row) is absent.")


def fx_neg_not_permutation() -> Fixture:
    s = dict(_TITAN_SHAPES, t=6, e=4, k_top=2, h=16, n=16)

    class Module(nn.Module):
        def forward(self, x, topk_ids, topk_w, w):
            flat = topk_ids.flatten()
            perm = torch.argsort(flat, stable=True)
            token_idx = perm // s["k_top"]
            offsets = torch.cumsum(torch.bincount(flat, minlength=s["e"]), 0).to(torch.int32)
            out_sorted = torch._grouped_mm(x[token_idx], w, offs=offsets)
            weighted = out_sorted * topk_w.flatten()[perm][:, None]
            # Bug: gathers back with perm // K where the inverse permutation of perm belongs.
            back = weighted[token_idx]
            return back.view(s["t"], s["k_top"], s["n"]).sum(dim=1)

    args = _titan_args(**s)
    return Fixture(
        Module(), args, _TITAN_NAMES, "negative",
        "aten._grouped_mm + weighted rows gathered back with perm // K (not a permutation) + "
        "view(T,K,n).sum(1)", "f32", True,
        "The gather-back index is perm // K, whose values lie in [0, T) with repeats: not the "
        "inverse permutation.",
        expect="The gather-back index is not a permutation of [0, T*K), so not every (token, slot) "
        "maps to exactly one expert row (SPEC 2.4 condition 2).")


# ---------------------------------------------------------------------------------------------
# transformers experts blocks
# ---------------------------------------------------------------------------------------------


def _init_params(module: nn.Module, dtype) -> None:
    """transformers 5 leaves expert parameters uninitialised when modules are built directly:
    overwrite every parameter deterministically (norm weights 1, everything else randn * 0.1)."""
    with torch.no_grad():
        for name, p in module.named_parameters():
            if p.dim() == 1 and "norm" in name:
                p.copy_(torch.ones_like(p))
            else:
                p.copy_(torch.randn(p.shape) * 0.1)
    module.to(dtype)


def _hf_config(model: str, impl: str, **extra):
    import transformers

    if model == "qwen3":
        cfg = transformers.Qwen3MoeConfig(hidden_size=32, moe_intermediate_size=16, num_experts=4,
                                          num_experts_per_tok=2, hidden_act="silu", **extra)
    elif model == "mixtral":
        cfg = transformers.MixtralConfig(hidden_size=16, intermediate_size=24, num_local_experts=8,
                                         num_experts_per_tok=2, hidden_act="silu", **extra)
    elif model == "deepseek_v3":
        cfg = transformers.DeepseekV3Config(hidden_size=32, moe_intermediate_size=16,
                                            n_routed_experts=8, num_experts_per_tok=3,
                                            n_shared_experts=1, n_group=1, topk_group=1,
                                            hidden_act="silu", **extra)
    elif model == "gpt_oss":
        # Expert biases on both projections, clamped swiglu on interleaved gate/up columns.
        cfg = transformers.GptOssConfig(hidden_size=32, intermediate_size=16, num_local_experts=4,
                                        num_experts_per_tok=2, **extra)
    elif model == "olmoe":
        cfg = transformers.OlmoeConfig(hidden_size=32, intermediate_size=16, num_experts=4,
                                       num_experts_per_tok=2, hidden_act="silu", **extra)
    else:
        raise ValueError(model)
    cfg._experts_implementation = impl
    return cfg


class _ExpertsPlusShared(nn.Module):
    """The expert part of DeepseekV3MoE.forward: experts(...) + shared_experts(hidden)."""

    def __init__(self, experts: nn.Module, shared: nn.Module):
        super().__init__()
        self.experts = experts
        self.shared_experts = shared

    def forward(self, hidden, top_k_index, top_k_weights):
        return self.experts(hidden, top_k_index, top_k_weights) + self.shared_experts(hidden)


def _hf_experts_fixture(model: str, impl: str, dtype, t: int) -> Fixture:
    cfg = _hf_config(model, impl)
    if model == "qwen3":
        from transformers.models.qwen3_moe.modeling_qwen3_moe import Qwen3MoeExperts as Experts
        e = cfg.num_experts
    elif model == "mixtral":
        from transformers.models.mixtral.modeling_mixtral import MixtralExperts as Experts
        e = cfg.num_local_experts
    elif model == "gpt_oss":
        from transformers.models.gpt_oss.modeling_gpt_oss import GptOssExperts as Experts
        e = cfg.num_local_experts
    elif model == "olmoe":
        from transformers.models.olmoe.modeling_olmoe import OlmoeExperts as Experts
        e = cfg.num_experts
    else:
        from transformers.models.deepseek_v3.modeling_deepseek_v3 import (
            DeepseekV3Experts as Experts, DeepseekV3MLP)
        e = cfg.n_routed_experts
    inner: nn.Module = Experts(cfg)
    if model == "deepseek_v3":
        shared = DeepseekV3MLP(cfg, intermediate_size=cfg.moe_intermediate_size * cfg.n_shared_experts)
        inner = _ExpertsPlusShared(inner, shared)
    _init_params(inner, dtype)
    k_top = cfg.num_experts_per_tok
    ids, tw = topk_routing(t, e, k_top, dtype)
    hidden = torch.randn(t, cfg.hidden_size).to(dtype)
    params = [p.detach().clone() for _, p in inner.named_parameters()]
    module = Functional(inner, 3)
    names = ["hidden_states", "top_k_index", "top_k_weights"] + module.param_names
    dt = "bf16" if dtype == torch.bfloat16 else "f32"
    shared_txt = " + shared_experts(hidden)" if model == "deepseek_v3" else ""
    notes = []
    if impl == "grouped_mm":
        mm = "aten._grouped_mm" if dtype == torch.bfloat16 else "transformers::grouped_mm_fallback"
        spelling = (f"transformers {model} experts, grouped_mm: torch.sort + x[perm // K] + histc/"
                    f"cumsum int32 + {mm} (gate_up, silu*up, down) + * w_sorted + inverse perm "
                    f"gather + view(T,K,h).sum(1){shared_txt}")
        if dtype != torch.bfloat16:
            notes.append("grouped matmul spelled as transformers::grouped_mm_fallback: transformers "
                         "falls back for non-bf16 weights while torch.compiler.is_compiling() is "
                         "true, which holds under torch.export (bf16 uses aten._grouped_mm)")
    else:
        spelling = (f"transformers {model} experts, batched_mm: repeat_interleave + "
                    f"gate_up_proj[ids] + bmm (gate_up, silu*up, down) + * w.reshape(-1) + "
                    f"view(T,K,h).sum(1){shared_txt}")
    notes.append("imported after torch-mlir's default decompositions: silu -> x * sigmoid(x), "
                 "chunk -> split_with_sizes, transpose -> permute, reshape -> view")
    return Fixture(
        module, [hidden, ids, tw] + params, names, "positive", spelling, dt, True,
        f"transformers {model} experts block ({impl}, {dt}) called as experts(hidden, top_k_index, "
        f"top_k_weights){shared_txt}, weights passed as forward arguments.",
        notes=notes)


def fx_hf_qwen3_grouped_f32():
    return _hf_experts_fixture("qwen3", "grouped_mm", torch.float32, t=6)


def fx_hf_qwen3_batched_f32():
    return _hf_experts_fixture("qwen3", "batched_mm", torch.float32, t=6)


def fx_hf_mixtral_grouped_f32():
    return _hf_experts_fixture("mixtral", "grouped_mm", torch.float32, t=8)


def fx_hf_mixtral_batched_f32():
    return _hf_experts_fixture("mixtral", "batched_mm", torch.float32, t=8)


def fx_hf_deepseek_v3_grouped_f32():
    return _hf_experts_fixture("deepseek_v3", "grouped_mm", torch.float32, t=5)


def fx_hf_qwen3_grouped_bf16():
    return _hf_experts_fixture("qwen3", "grouped_mm", torch.bfloat16, t=6)


def fx_hf_deepseek_v3_grouped_bf16():
    return _hf_experts_fixture("deepseek_v3", "grouped_mm", torch.bfloat16, t=5)


def fx_hf_gpt_oss_grouped_f32():
    return _hf_experts_fixture("gpt_oss", "grouped_mm", torch.float32, t=6)


def fx_hf_gpt_oss_grouped_bf16():
    return _hf_experts_fixture("gpt_oss", "grouped_mm", torch.bfloat16, t=6)


def fx_hf_gpt_oss_batched_f32():
    return _hf_experts_fixture("gpt_oss", "batched_mm", torch.float32, t=6)


def fx_hf_olmoe_batched_bf16():
    return _hf_experts_fixture("olmoe", "batched_mm", torch.bfloat16, t=7)


# --- whole models (recognition only; weights stay literals) -------------------------------------


class _Logits(nn.Module):
    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, input_ids):
        return self.model(input_ids=input_ids, use_cache=False).logits


def _hf_whole_model(model: str, layers: int = 3) -> Fixture:
    import transformers

    common = dict(vocab_size=64, hidden_size=32, num_hidden_layers=layers, num_attention_heads=4,
                  max_position_embeddings=64, use_cache=False, tie_word_embeddings=False)
    if model == "qwen3":
        cfg = transformers.Qwen3MoeConfig(intermediate_size=48, moe_intermediate_size=16,
                                          num_experts=4, num_experts_per_tok=2, head_dim=8,
                                          num_key_value_heads=2,
                                          decoder_sparse_step=1, mlp_only_layers=[], **common)
        cls = transformers.Qwen3MoeForCausalLM
        layers_txt = f"{layers} MoE layers"
    else:
        cfg = transformers.DeepseekV3Config(intermediate_size=48, moe_intermediate_size=16,
                                            n_routed_experts=4, num_experts_per_tok=2,
                                            n_shared_experts=1, n_group=1, topk_group=1,
                                            first_k_dense_replace=1, q_lora_rank=16,
                                            kv_lora_rank=16, qk_rope_head_dim=8,
                                            qk_nope_head_dim=8, v_head_dim=8,
                                            num_key_value_heads=4, **common)
        cls = transformers.DeepseekV3ForCausalLM
        layers_txt = "1 dense + 2 MoE layers"
    cfg._experts_implementation = "grouped_mm"
    cfg._attn_implementation = "eager"
    lm = cls(cfg)
    lm.config._experts_implementation = "grouped_mm"
    _init_params(lm, torch.float32)
    lm.eval()
    # torch-mlir's import_frozen_program looks every buffer up in prog.state_dict, which omits
    # non-persistent buffers (the rotary inv_freq): make them persistent so they become literals.
    for sub in lm.modules():
        sub._non_persistent_buffers_set.clear()
    input_ids = torch.randint(0, cfg.vocab_size, (1, 6))
    return Fixture(
        _Logits(lm), [input_ids], ["input_ids"], "positive",
        f"whole {cls.__name__} ({layers_txt}, grouped_mm experts, eager attention), logits",
        "f32", False,
        f"Recognition of every MoE layer of a tiny {cls.__name__} exported on input_ids (1, 6); "
        "weights stay literals and the router is part of the graph.",
        notes=["recognition only: not meant to be run (weights are torch.vtensor.literal); "
               "expected holds the logits anyway",
               "non-persistent buffers (rotary inv_freq) were made persistent before export: "
               "torch-mlir's import_frozen_program only looks buffers up in the state_dict"])


def fx_hf_qwen3_model_grouped():
    return _hf_whole_model("qwen3")


def fx_hf_deepseek_v3_model_grouped():
    return _hf_whole_model("deepseek_v3")


FIXTURES: dict[str, Callable[[], Fixture]] = {
    "npu_a8w8_mode2": fx_npu_a8w8_mode2,
    "npu_float_mode0": fx_npu_float_mode0,
    "npu_gmmfr_direct": fx_npu_gmmfr_direct,
    "quant_a8w8_int32_dequant": fx_quant_a8w8_int32_dequant,
    "quant_a8w8_weight_in_pertoken": fx_quant_a8w8_weight_in_pertoken,
    "titan_index_add_f32": fx_titan_index_add_f32,
    "titan_router_index_add_f32": fx_titan_router_index_add_f32,
    "titan_scatter_add_f32": fx_titan_scatter_add_f32,
    "titan_index_put_f32": fx_titan_index_put_f32,
    "hf_qwen3_grouped_f32": fx_hf_qwen3_grouped_f32,
    "hf_qwen3_batched_f32": fx_hf_qwen3_batched_f32,
    "hf_mixtral_grouped_f32": fx_hf_mixtral_grouped_f32,
    "hf_mixtral_batched_f32": fx_hf_mixtral_batched_f32,
    "hf_deepseek_v3_grouped_f32": fx_hf_deepseek_v3_grouped_f32,
    "hf_qwen3_grouped_bf16": fx_hf_qwen3_grouped_bf16,
    "hf_deepseek_v3_grouped_bf16": fx_hf_deepseek_v3_grouped_bf16,
    "hf_gpt_oss_grouped_f32": fx_hf_gpt_oss_grouped_f32,
    "hf_gpt_oss_grouped_bf16": fx_hf_gpt_oss_grouped_bf16,
    "hf_gpt_oss_batched_f32": fx_hf_gpt_oss_batched_f32,
    "hf_olmoe_batched_bf16": fx_hf_olmoe_batched_bf16,
    "neg_nonlinear_between": fx_neg_nonlinear_between,
    "neg_weight_after_sum": fx_neg_weight_after_sum,
    "neg_not_permutation": fx_neg_not_permutation,
    "hf_qwen3_model_grouped": fx_hf_qwen3_model_grouped,
    "hf_deepseek_v3_model_grouped": fx_hf_deepseek_v3_model_grouped,
}


# ---------------------------------------------------------------------------------------------
# Export, post-processing, writing
# ---------------------------------------------------------------------------------------------


def _path_prefixes() -> list[tuple[str, str]]:
    """Absolute prefixes to rewrite, longest first (site-packages before the repo, etc.)."""
    subs = {}
    for key in ("purelib", "platlib"):
        subs[sysconfig.get_paths()[key].rstrip("/") + "/"] = "site-packages/"
    for mod in (torch,):
        sp = str(Path(mod.__file__).resolve().parents[1]).rstrip("/") + "/"
        subs[sp] = "site-packages/"
    subs[str(REPO_ROOT).rstrip("/") + "/"] = ""
    return sorted(subs.items(), key=lambda kv: -len(kv[0]))


def postprocess(text: str) -> str:
    for old, new in _path_prefixes():
        text = text.replace(old, new)
    return text


def to_numpy(t: torch.Tensor) -> np.ndarray:
    t = t.detach().cpu()
    if t.dtype in (torch.bfloat16, torch.float16):
        t = t.to(torch.float32)          # exact widening
    assert t.dtype != torch.bool, "bool tensors are not used in fixtures"
    return t.contiguous().numpy()


def mlir_opt() -> str:
    for cand in ("mlir-opt-22", "/usr/lib/llvm-22/bin/mlir-opt"):
        try:
            subprocess.run([cand, "--version"], capture_output=True, check=True)
            return cand
        except (OSError, subprocess.CalledProcessError):
            continue
    raise RuntimeError("mlir-opt-22 not found")


def export_one(name: str, out_dir: Path) -> dict:
    from torch_mlir import fx

    register_npu_ops()
    seed_for(name)
    fix = FIXTURES[name]()
    assert len(fix.args) == len(fix.arg_names), name

    with torch.no_grad():
        expected = fix.module(*fix.args)
    mod = fx.export_and_import(fix.module, *fix.args, output_type="raw", func_name="main")
    text = postprocess(mod.operation.get_asm(print_generic_op_form=True, enable_debug_info=True))
    if fix.self_contained:
        assert "torch.vtensor.literal" not in text, f"{name}: self-contained fixture has literals"

    out_dir.mkdir(parents=True, exist_ok=True)
    mlir_path = out_dir / f"{name}.mlir"
    mlir_path.write_text(text)
    subprocess.run([mlir_opt(), "--allow-unregistered-dialect", str(mlir_path), "-o", os.devnull],
                   check=True)

    case = out_dir / name
    case.mkdir(exist_ok=True)
    for stale in case.glob("*.npy"):
        stale.unlink()
    for i, a in enumerate(fix.args):
        np.save(case / f"arg{i}.npy", to_numpy(a))
    if isinstance(expected, (tuple, list)):
        for i, e in enumerate(expected):
            np.save(case / f"expected{i}.npy", to_numpy(e))
    else:
        np.save(case / "expected.npy", to_numpy(expected))

    meta = {
        "name": name,
        "kind": fix.kind,
        "spelling": fix.spelling,
        "dtype": fix.dtype,
        "self_contained": fix.self_contained,
        "tolerance": 1e-5 if fix.dtype == "f32" else 1e-2,
        "description": fix.description,
    }
    if fix.expect is not None:
        meta["expect"] = fix.expect
    meta["arg_names"] = fix.arg_names
    if fix.notes:
        meta["notes"] = fix.notes
    (case / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    return meta


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output directory")
    ap.add_argument("--only", nargs="+", metavar="NAME", help="export only these fixtures")
    ap.add_argument("--list", action="store_true", help="list fixture names and exit")
    ap.add_argument("--qwen3-layers", type=int, metavar="N",
                    help="also offer hf_qwen3_model_grouped_NL, the whole-model export with N MoE "
                         "layers (for the recognition benchmark; not committed)")
    opts = ap.parse_args(argv)
    if opts.qwen3_layers:
        FIXTURES[f"hf_qwen3_model_grouped_{opts.qwen3_layers}L"] = lambda: _hf_whole_model("qwen3", opts.qwen3_layers)
    if opts.list:
        print("\n".join(FIXTURES))
        return 0
    names = opts.only or list(FIXTURES)
    unknown = [n for n in names if n not in FIXTURES]
    if unknown:
        ap.error(f"unknown fixture(s): {', '.join(unknown)}")
    failed = []
    for name in names:
        try:
            meta = export_one(name, opts.out)
            print(f"ok    {name:32s} {meta['kind']:8s} {meta['dtype']}")
        except Exception as exc:  # report and continue with the others
            failed.append(name)
            print(f"FAIL  {name}: {type(exc).__name__}: {exc}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
