//! Loop nests of the unfused MoE ops on memrefs, as MLIR text, so that the unfused and the
//! fused form of one module both run on the CPU: `npu.grouped_matmul` (vectorized over output
//! columns like the fused kernel, the expert outputs written to memory), `npu.moe_finalize_routing`,
//! `npu.moe_init_routing` (a stable counting sort by expert) and `npu.format_cast`. Every index is
//! checked before it is used; a bad one is recorded in the status global and the kernel writes
//! nothing further.

use super::gmmfr_loop_kernel::{STATUS_GLOBAL, status};
use super::vnni::{self, VnniNames};
use gmmfr_dialect::types::{Elem, TensorInfo};
use std::fmt::Write;

/// One op's kernel: its operands (present ones, by name), results, and integer attributes.
pub struct OpKernel {
    /// Kernel function name.
    pub name: String,
    /// Present operands.
    pub operands: Vec<(&'static str, TensorInfo)>,
    /// Result types.
    pub results: Vec<TensorInfo>,
    /// Integer attributes by name.
    pub attributes: Vec<(&'static str, i64)>,
    /// active_expert_range of a routing.
    pub expert_range: Option<(i64, i64)>,
}

/// A memref type for a tensor type.
pub fn memref(info: &TensorInfo) -> String {
    let mut text = String::from("memref<");
    for d in &info.dims {
        let _ = write!(text, "{}x", d.unwrap_or(0));
    }
    let _ = write!(text, "{}>", info.elem);
    text
}

impl OpKernel {
    fn operand(&self, name: &str) -> Option<&TensorInfo> {
        self.operands.iter().find(|(n, _)| *n == name).map(|(_, i)| i)
    }
    fn ty(&self, name: &str) -> String {
        self.operand(name).map(memref).unwrap_or_default()
    }
    fn attr(&self, name: &str) -> i64 {
        self.attributes.iter().find(|(n, _)| *n == name).map_or(0, |(_, v)| *v)
    }
    fn header(&self, s: &mut String) {
        let params: Vec<String> = self
            .operands
            .iter()
            .map(|(n, i)| format!("%{n}: {}", memref(i)))
            .chain(
                self.results
                    .iter()
                    .enumerate()
                    .map(|(i, r)| format!("%out{i}: {}", memref(r))),
            )
            .collect();
        let _ = writeln!(s, "func.func private @{}({}) {{", self.name, params.join(", "));
        let _ = writeln!(s, "  %status = memref.get_global @{STATUS_GLOBAL} : memref<4xi64>");
        let _ = writeln!(s, "  %c0 = arith.constant 0 : index");
        let _ = writeln!(s, "  %c1 = arith.constant 1 : index");
        let _ = writeln!(s, "  %c16 = arith.constant 16 : index");
        let _ = writeln!(s, "  %z64 = arith.constant 0 : i64");
        let _ = writeln!(s, "  %zero_i32 = arith.constant 0 : i32");
        let _ = writeln!(s, "  %true = arith.constant true");
        let _ = writeln!(s, "  %false = arith.constant false");
        let _ = writeln!(s, "  %zf = arith.constant 0.0 : f32");
    }
    /// The parameter memref types: operands, then results.
    pub fn parameter_types(&self) -> Vec<String> {
        self.operands
            .iter()
            .map(|(_, i)| memref(i))
            .chain(self.results.iter().map(memref))
            .collect()
    }
}

/// `[code, index, value, bound]` into the status global.
fn record(s: &mut String, indent: &str, code: i64, index: &str, value: &str, bound: &str) {
    let _ = writeln!(s, "{indent}%rec_code = arith.constant {code} : i64");
    let _ = writeln!(s, "{indent}%rec_i = arith.index_cast {index} : index to i64");
    let _ = writeln!(s, "{indent}%rec_s1 = arith.constant 1 : index");
    let _ = writeln!(s, "{indent}%rec_s2 = arith.constant 2 : index");
    let _ = writeln!(s, "{indent}%rec_s3 = arith.constant 3 : index");
    let _ = writeln!(s, "{indent}%rec_s0 = arith.constant 0 : index");
    let _ = writeln!(s, "{indent}memref.store %rec_code, %status[%rec_s0] : memref<4xi64>");
    let _ = writeln!(s, "{indent}memref.store %rec_i, %status[%rec_s1] : memref<4xi64>");
    let _ = writeln!(s, "{indent}memref.store {value}, %status[%rec_s2] : memref<4xi64>");
    let _ = writeln!(s, "{indent}memref.store {bound}, %status[%rec_s3] : memref<4xi64>");
}

/// Zero of an element type as an MLIR constant literal.
fn zero(elem: &Elem) -> &'static str {
    if elem.is_float() { "0.0" } else { "0" }
}

/// `npu.format_cast` between ND (..., k, n) and NZ (..., n1, k1, 16, n0).
pub fn format_cast(k: &OpKernel, n0: u64) -> String {
    let mut s = String::new();
    k.header(&mut s);
    let input = k.operand("input").cloned().unwrap_or_else(|| k.results[0].clone());
    let out = &k.results[0];
    let to_nz = k.attr("acl_format") == 29;
    let (nd, nz) = if to_nz { (&input, out) } else { (out, &input) };
    let batch = nd.rank() - 2;
    let kk = nd.dim(batch).unwrap_or(0);
    let nn = nd.dim(batch + 1).unwrap_or(0);
    let elem = out.elem.clone();
    let _ = writeln!(s, "  %cz = arith.constant {} : {elem}", zero(&elem));
    let _ = writeln!(s, "  linalg.fill ins(%cz : {elem}) outs(%out0 : {})", memref(out));
    let _ = writeln!(s, "  %cn0 = arith.constant {n0} : index");
    let mut indices = Vec::new();
    for b in 0..batch {
        let _ = writeln!(s, "  %cb{b} = arith.constant {} : index", nd.dim(b).unwrap_or(0));
        let _ = writeln!(s, "  scf.for %b{b} = %c0 to %cb{b} step %c1 {{");
        indices.push(format!("%b{b}"));
    }
    let _ = writeln!(s, "  %ck = arith.constant {kk} : index");
    let _ = writeln!(s, "  %cn = arith.constant {nn} : index");
    let _ = writeln!(s, "  scf.for %kk = %c0 to %ck step %c1 {{");
    let _ = writeln!(s, "  scf.for %nn = %c0 to %cn step %c1 {{");
    let _ = writeln!(s, "    %n1 = arith.divui %nn, %cn0 : index");
    let _ = writeln!(s, "    %n0 = arith.remui %nn, %cn0 : index");
    let _ = writeln!(s, "    %k1 = arith.divui %kk, %c16 : index");
    let _ = writeln!(s, "    %k0 = arith.remui %kk, %c16 : index");
    let b = indices.join(", ");
    let sep = if b.is_empty() { "" } else { ", " };
    let nd_index = format!("{b}{sep}%kk, %nn");
    let nz_index = format!("{b}{sep}%n1, %k1, %k0, %n0");
    let (from, from_index, to_index) = if to_nz {
        ("%input", &nd_index, &nz_index)
    } else {
        ("%input", &nz_index, &nd_index)
    };
    let _ = writeln!(s, "    %v = memref.load {from}[{from_index}] : {}", memref(&input));
    let _ = writeln!(s, "    memref.store %v, %out0[{to_index}] : {}", memref(out));
    let _ = writeln!(s, "  }}");
    let _ = writeln!(s, "  }}");
    for _ in 0..batch {
        let _ = writeln!(s, "  }}");
    }
    let _ = nz;
    let _ = writeln!(s, "  return\n}}");
    s
}

/// `npu.moe_init_routing`: a stable counting sort of the (token, slot) sources by expert.
pub fn init_routing(k: &OpKernel) -> String {
    let mut s = String::new();
    k.header(&mut s);
    let x = k.operand("x").cloned().unwrap_or_else(|| k.results[0].clone());
    let idx = k.operand("expert_idx").cloned().unwrap_or_else(|| k.results[1].clone());
    let (t, h) = (x.dim(0).unwrap_or(0), x.dim(1).unwrap_or(0));
    let top_k = idx.dim(1).unwrap_or(0);
    let tk = t * top_k;
    let experts = k.attr("expert_num");
    let (start, end) = k.expert_range.unwrap_or((0, experts));
    let local = (end - start).max(0) as u64;
    let rows = k.results[0].dim(0).unwrap_or(0);
    let active = k.attr("active_num");
    let cap = if active > 0 { (active as u64).min(tk) } else { tk };
    let (ex, ri, tokens) = (memref(&k.results[0]), memref(&k.results[1]), memref(&k.results[2]));
    let _ = writeln!(s, "  %cT = arith.constant {t} : index");
    let _ = writeln!(s, "  %cK = arith.constant {top_k} : index");
    let _ = writeln!(s, "  %cTK = arith.constant {tk} : index");
    let _ = writeln!(s, "  %cH = arith.constant {h} : index");
    let _ = writeln!(s, "  %cL = arith.constant {local} : index");
    let _ = writeln!(s, "  %cRows = arith.constant {rows} : index");
    let _ = writeln!(s, "  %cCap = arith.constant {cap} : index");
    let _ = writeln!(s, "  %experts = arith.constant {experts} : i32");
    let _ = writeln!(s, "  %start = arith.constant {start} : i32");
    let _ = writeln!(s, "  %end = arith.constant {end} : i32");
    let _ = writeln!(s, "  %experts64 = arith.constant {experts} : i64");
    let _ = writeln!(s, "  %m1 = arith.constant -1 : i32");
    // 1. Every expert id in [0, expert_num).
    let _ = writeln!(
        s,
        "  %valid = scf.for %f = %c0 to %cTK step %c1 iter_args(%ok = %true) -> (i1) {{"
    );
    let _ = writeln!(s, "    %t = arith.divui %f, %cK : index");
    let _ = writeln!(s, "    %j = arith.remui %f, %cK : index");
    let _ = writeln!(s, "    %id = memref.load %expert_idx[%t, %j] : {}", memref(&idx));
    let _ = writeln!(s, "    %neg = arith.cmpi slt, %id, %zero_i32 : i32");
    let _ = writeln!(s, "    %big = arith.cmpi sge, %id, %experts : i32");
    let _ = writeln!(s, "    %bad = arith.ori %neg, %big : i1");
    let _ = writeln!(s, "    %first = arith.andi %ok, %bad : i1");
    let _ = writeln!(s, "    scf.if %first {{");
    let _ = writeln!(s, "      %id64 = arith.extsi %id : i32 to i64");
    record(
        &mut s,
        "      ",
        status::INDEX_OUT_OF_RANGE,
        "%f",
        "%id64",
        "%experts64",
    );
    let _ = writeln!(s, "    }}");
    let _ = writeln!(s, "    %good = arith.xori %bad, %true : i1");
    let _ = writeln!(s, "    %next = arith.andi %ok, %good : i1");
    let _ = writeln!(s, "    scf.yield %next : i1");
    let _ = writeln!(s, "  }}");
    let _ = writeln!(s, "  scf.if %valid {{");
    let _ = writeln!(s, "    %zero_i64 = arith.constant 0 : i64");
    let _ = writeln!(s, "    %one_i64 = arith.constant 1 : i64");
    // 2. Counts per local expert, then the first row of each.
    let _ = writeln!(s, "    %counts = memref.alloca() : memref<{}xi64>", local + 1);
    let _ = writeln!(s, "    %cL1 = arith.addi %cL, %c1 : index");
    let _ = writeln!(s, "    scf.for %e = %c0 to %cL1 step %c1 {{");
    let _ = writeln!(
        s,
        "      memref.store %zero_i64, %counts[%e] : memref<{}xi64>",
        local + 1
    );
    let _ = writeln!(s, "    }}");
    let _ = writeln!(s, "    scf.for %f = %c0 to %cTK step %c1 {{");
    let _ = writeln!(s, "      %t = arith.divui %f, %cK : index");
    let _ = writeln!(s, "      %j = arith.remui %f, %cK : index");
    let _ = writeln!(s, "      %id = memref.load %expert_idx[%t, %j] : {}", memref(&idx));
    let _ = writeln!(s, "      %lo = arith.cmpi sge, %id, %start : i32");
    let _ = writeln!(s, "      %hi = arith.cmpi slt, %id, %end : i32");
    let _ = writeln!(s, "      %in = arith.andi %lo, %hi : i1");
    let _ = writeln!(s, "      scf.if %in {{");
    let _ = writeln!(s, "        %le = arith.subi %id, %start : i32");
    let _ = writeln!(s, "        %e = arith.index_cast %le : i32 to index");
    let _ = writeln!(s, "        %e1 = arith.addi %e, %c1 : index");
    let _ = writeln!(s, "        %old = memref.load %counts[%e1] : memref<{}xi64>", local + 1);
    let _ = writeln!(s, "        %new = arith.addi %old, %one_i64 : i64");
    let _ = writeln!(s, "        memref.store %new, %counts[%e1] : memref<{}xi64>", local + 1);
    let _ = writeln!(s, "      }}");
    let _ = writeln!(s, "    }}");
    // Prefix sums: counts[e] becomes the first row of local expert e.
    let _ = writeln!(s, "    scf.for %e = %c1 to %cL1 step %c1 {{");
    let _ = writeln!(s, "      %ep = arith.subi %e, %c1 : index");
    let _ = writeln!(s, "      %a = memref.load %counts[%ep] : memref<{}xi64>", local + 1);
    let _ = writeln!(s, "      %b = memref.load %counts[%e] : memref<{}xi64>", local + 1);
    let _ = writeln!(s, "      %c = arith.addi %a, %b : i64");
    let _ = writeln!(s, "      memref.store %c, %counts[%e] : memref<{}xi64>", local + 1);
    let _ = writeln!(s, "    }}");
    // 3. Place every kept source at its row (stable: in flat order), up to the cap.
    let _ = writeln!(s, "    %cursor = memref.alloca() : memref<{}xi64>", local.max(1));
    let _ = writeln!(s, "    scf.for %e = %c0 to %cL step %c1 {{");
    let _ = writeln!(
        s,
        "      %first_row = memref.load %counts[%e] : memref<{}xi64>",
        local + 1
    );
    let _ = writeln!(
        s,
        "      memref.store %first_row, %cursor[%e] : memref<{}xi64>",
        local.max(1)
    );
    let _ = writeln!(s, "    }}");
    let _ = writeln!(s, "    scf.for %f = %c0 to %cTK step %c1 {{");
    let _ = writeln!(s, "      memref.store %m1, %out1[%f] : {ri}");
    let _ = writeln!(s, "    }}");
    let _ = writeln!(s, "    %placed = memref.alloca() : memref<{}xi64>", local.max(1));
    let _ = writeln!(s, "    scf.for %e = %c0 to %cL step %c1 {{");
    let _ = writeln!(
        s,
        "      memref.store %zero_i64, %placed[%e] : memref<{}xi64>",
        local.max(1)
    );
    let _ = writeln!(s, "    }}");
    let _ = writeln!(
        s,
        "    %ex_zero = arith.constant {} : {}",
        zero(&k.results[0].elem),
        k.results[0].elem
    );
    let _ = writeln!(
        s,
        "    linalg.fill ins(%ex_zero : {}) outs(%out0 : {ex})",
        k.results[0].elem
    );
    let _ = writeln!(s, "    %cap64 = arith.constant {cap} : i64");
    let _ = writeln!(s, "    scf.for %f = %c0 to %cTK step %c1 {{");
    let _ = writeln!(s, "      %t = arith.divui %f, %cK : index");
    let _ = writeln!(s, "      %j = arith.remui %f, %cK : index");
    let _ = writeln!(s, "      %id = memref.load %expert_idx[%t, %j] : {}", memref(&idx));
    let _ = writeln!(s, "      %lo = arith.cmpi sge, %id, %start : i32");
    let _ = writeln!(s, "      %hi = arith.cmpi slt, %id, %end : i32");
    let _ = writeln!(s, "      %in = arith.andi %lo, %hi : i1");
    let _ = writeln!(s, "      scf.if %in {{");
    let _ = writeln!(s, "        %le = arith.subi %id, %start : i32");
    let _ = writeln!(s, "        %e = arith.index_cast %le : i32 to index");
    let _ = writeln!(
        s,
        "        %row64 = memref.load %cursor[%e] : memref<{}xi64>",
        local.max(1)
    );
    let _ = writeln!(s, "        %next64 = arith.addi %row64, %one_i64 : i64");
    let _ = writeln!(
        s,
        "        memref.store %next64, %cursor[%e] : memref<{}xi64>",
        local.max(1)
    );
    let _ = writeln!(s, "        %kept = arith.cmpi slt, %row64, %cap64 : i64");
    let _ = writeln!(s, "        scf.if %kept {{");
    let _ = writeln!(s, "          %p = arith.index_cast %row64 : i64 to index");
    let _ = writeln!(
        s,
        "          %pc = memref.load %placed[%e] : memref<{}xi64>",
        local.max(1)
    );
    let _ = writeln!(s, "          %pn = arith.addi %pc, %one_i64 : i64");
    let _ = writeln!(
        s,
        "          memref.store %pn, %placed[%e] : memref<{}xi64>",
        local.max(1)
    );
    if k.attr("row_idx_type") == 1 {
        let _ = writeln!(s, "          %src = arith.index_cast %f : index to i32");
        let _ = writeln!(s, "          memref.store %src, %out1[%p] : {ri}");
    } else {
        let _ = writeln!(s, "          %dst = arith.index_cast %p : index to i32");
        let _ = writeln!(s, "          memref.store %dst, %out1[%f] : {ri}");
    }
    let _ = writeln!(s, "          %in_rows = arith.cmpi ult, %p, %cRows : index");
    let _ = writeln!(s, "          scf.if %in_rows {{");
    let _ = writeln!(s, "            scf.for %c = %c0 to %cH step %c1 {{");
    let _ = writeln!(s, "              %v = memref.load %x[%t, %c] : {}", memref(&x));
    let _ = writeln!(s, "              memref.store %v, %out0[%p, %c] : {ex}");
    let _ = writeln!(s, "            }}");
    let _ = writeln!(s, "          }}");
    let _ = writeln!(s, "        }}");
    let _ = writeln!(s, "      }}");
    let _ = writeln!(s, "    }}");
    // 4. Tokens per kept expert: counts or prefix sums of the rows placed.
    let cumsum = k.attr("expert_tokens_num_type") == 0;
    let _ = writeln!(
        s,
        "    %total = scf.for %e = %c0 to %cL step %c1 iter_args(%sum = %zero_i64) -> (i64) {{"
    );
    let _ = writeln!(s, "      %n = memref.load %placed[%e] : memref<{}xi64>", local.max(1));
    let _ = writeln!(s, "      %acc = arith.addi %sum, %n : i64");
    let value = if cumsum { "%acc" } else { "%n" };
    let _ = writeln!(s, "      memref.store {value}, %out2[%e] : {tokens}");
    let _ = writeln!(s, "      scf.yield %acc : i64");
    let _ = writeln!(s, "    }}");
    let _ = writeln!(s, "  }}");
    let _ = writeln!(s, "  return\n}}");
    s
}

/// `npu.moe_finalize_routing`, computed in f32 and rounded once to the output type.
pub fn finalize_routing(k: &OpKernel) -> String {
    let mut s = String::new();
    k.header(&mut s);
    let rows = k
        .operand("expanded_permuted_rows")
        .cloned()
        .unwrap_or_else(|| k.results[0].clone());
    let out = &k.results[0];
    let (r, hh) = (out.dim(0).unwrap_or(0), out.dim(1).unwrap_or(0));
    let rk = k.operand("expanded_src_to_dst_row").and_then(|i| i.dim(0)).unwrap_or(0);
    let top_k = k
        .operand("scales")
        .and_then(|i| i.dim(1))
        .or_else(|| k.operand("expert_for_source_row").and_then(|i| i.dim(1)))
        .unwrap_or(rk.checked_div(r).unwrap_or(0));
    let mode = k.attr("drop_pad_mode");
    let padded = mode == 1 || mode == 3;
    let total_rows = if padded {
        rows.dim(0).unwrap_or(0) * rows.dim(1).unwrap_or(0)
    } else {
        rows.dim(0).unwrap_or(0)
    };
    let capacity = if padded { rows.dim(1).unwrap_or(1) } else { 1 };
    let experts = k.operand("bias").and_then(|b| b.dim(0)).unwrap_or(0);
    let _ = writeln!(s, "  %cR = arith.constant {r} : index");
    let _ = writeln!(s, "  %cH = arith.constant {hh} : index");
    let _ = writeln!(s, "  %cK = arith.constant {top_k} : index");
    let _ = writeln!(s, "  %cRK = arith.constant {rk} : index");
    let _ = writeln!(s, "  %rows64 = arith.constant {total_rows} : i64");
    let _ = writeln!(s, "  %experts64 = arith.constant {experts} : i64");
    let _ = writeln!(s, "  %cCap = arith.constant {capacity} : index");
    let _ = writeln!(s, "  %m1 = arith.constant -1 : i64");
    // 1. Every map entry is a row (or -1 in the padded modes); every expert id in range.
    let _ = writeln!(
        s,
        "  %maps_ok = scf.for %pos = %c0 to %cRK step %c1 iter_args(%ok = %true) -> (i1) {{"
    );
    let _ = writeln!(
        s,
        "    %v32 = memref.load %expanded_src_to_dst_row[%pos] : {}",
        k.ty("expanded_src_to_dst_row")
    );
    let _ = writeln!(s, "    %v = arith.extsi %v32 : i32 to i64");
    let _ = writeln!(s, "    %neg = arith.cmpi slt, %v, %z64 : i64");
    let _ = writeln!(s, "    %big = arith.cmpi sge, %v, %rows64 : i64");
    let _ = writeln!(s, "    %is_drop = arith.cmpi eq, %v, %m1 : i64");
    let allowed_drop = if padded { "%is_drop" } else { "%false" };
    let _ = writeln!(s, "    %neg_bad = arith.xori {allowed_drop}, %true : i1");
    let _ = writeln!(s, "    %neg_really = arith.andi %neg, %neg_bad : i1");
    let _ = writeln!(s, "    %bad = arith.ori %neg_really, %big : i1");
    let _ = writeln!(s, "    %first = arith.andi %ok, %bad : i1");
    let _ = writeln!(s, "    scf.if %first {{");
    record(&mut s, "      ", status::INDEX_OUT_OF_RANGE, "%pos", "%v", "%rows64");
    let _ = writeln!(s, "    }}");
    let _ = writeln!(s, "    %good = arith.xori %bad, %true : i1");
    let _ = writeln!(s, "    %next = arith.andi %ok, %good : i1");
    let _ = writeln!(s, "    scf.yield %next : i1");
    let _ = writeln!(s, "  }}");
    let mut valid = "%maps_ok".to_string();
    if k.operand("bias").is_some() {
        let _ = writeln!(
            s,
            "  %ids_ok = scf.for %i = %c0 to %cR step %c1 iter_args(%ok = %maps_ok) -> (i1) {{"
        );
        let _ = writeln!(
            s,
            "    %inner = scf.for %j = %c0 to %cK step %c1 iter_args(%ok2 = %ok) -> (i1) {{"
        );
        let _ = writeln!(
            s,
            "      %id32 = memref.load %expert_for_source_row[%i, %j] : {}",
            k.ty("expert_for_source_row")
        );
        let _ = writeln!(s, "      %id = arith.extsi %id32 : i32 to i64");
        let _ = writeln!(s, "      %neg = arith.cmpi slt, %id, %z64 : i64");
        let _ = writeln!(s, "      %big = arith.cmpi sge, %id, %experts64 : i64");
        let _ = writeln!(s, "      %bad = arith.ori %neg, %big : i1");
        let _ = writeln!(s, "      %first = arith.andi %ok2, %bad : i1");
        let _ = writeln!(s, "      scf.if %first {{");
        let _ = writeln!(s, "        %flat = arith.muli %i, %cK : index");
        let _ = writeln!(s, "        %flat2 = arith.addi %flat, %j : index");
        record(
            &mut s,
            "        ",
            status::INDEX_OUT_OF_RANGE,
            "%flat2",
            "%id",
            "%experts64",
        );
        let _ = writeln!(s, "      }}");
        let _ = writeln!(s, "      %good = arith.xori %bad, %true : i1");
        let _ = writeln!(s, "      %next = arith.andi %ok2, %good : i1");
        let _ = writeln!(s, "      scf.yield %next : i1");
        let _ = writeln!(s, "    }}");
        let _ = writeln!(s, "    scf.yield %inner : i1");
        let _ = writeln!(s, "  }}");
        valid = "%ids_ok".into();
    }
    // 2. The combine.
    let to_f32 = |s: &mut String, name: &str, value: &str, elem: &Elem| -> String {
        if *elem == Elem::F32 {
            value.to_string()
        } else {
            let _ = writeln!(s, "          %{name} = arith.extf {value} : {elem} to f32");
            format!("%{name}")
        }
    };
    let _ = writeln!(s, "  scf.if {valid} {{");
    let _ = writeln!(s, "    scf.for %i = %c0 to %cR step %c1 {{");
    let _ = writeln!(s, "      scf.for %c = %c0 to %cH step %c1 {{");
    let mut init = "%zf".to_string();
    for skip in ["skip1", "skip2"] {
        if let Some(info) = k.operand(skip) {
            let _ = writeln!(
                s,
                "          %{skip}_raw = memref.load %{skip}[%i, %c] : {}",
                memref(info)
            );
            let v = to_f32(&mut s, &format!("{skip}_f"), &format!("%{skip}_raw"), &info.elem);
            let _ = writeln!(s, "          %{skip}_acc = arith.addf {init}, {v} : f32");
            init = format!("%{skip}_acc");
        }
    }
    let _ = writeln!(
        s,
        "        %sum = scf.for %j = %c0 to %cK step %c1 iter_args(%acc = {init}) -> (f32) {{"
    );
    if mode == 0 || mode == 1 {
        let _ = writeln!(s, "          %jr = arith.muli %j, %cR : index");
        let _ = writeln!(s, "          %pos = arith.addi %jr, %i : index");
    } else {
        let _ = writeln!(s, "          %ik = arith.muli %i, %cK : index");
        let _ = writeln!(s, "          %pos = arith.addi %ik, %j : index");
    }
    let _ = writeln!(
        s,
        "          %v32 = memref.load %expanded_src_to_dst_row[%pos] : {}",
        k.ty("expanded_src_to_dst_row")
    );
    let _ = writeln!(s, "          %dropped = arith.cmpi slt, %v32, %zero_i32 : i32");
    let _ = writeln!(s, "          %row = scf.if %dropped -> (f32) {{");
    let _ = writeln!(s, "            scf.yield %zf : f32");
    let _ = writeln!(s, "          }} else {{");
    let _ = writeln!(s, "            %v = arith.index_cast %v32 : i32 to index");
    if padded {
        let _ = writeln!(s, "            %ve = arith.divui %v, %cCap : index");
        let _ = writeln!(s, "            %vc = arith.remui %v, %cCap : index");
        let _ = writeln!(
            s,
            "            %raw = memref.load %expanded_permuted_rows[%ve, %vc, %c] : {}",
            memref(&rows)
        );
    } else {
        let _ = writeln!(
            s,
            "            %raw = memref.load %expanded_permuted_rows[%v, %c] : {}",
            memref(&rows)
        );
    }
    let rv = if rows.elem == Elem::F32 {
        "%raw".to_string()
    } else {
        let _ = writeln!(s, "            %rawf = arith.extf %raw : {} to f32", rows.elem);
        "%rawf".to_string()
    };
    let _ = writeln!(s, "            scf.yield {rv} : f32");
    let _ = writeln!(s, "          }}");
    let mut term = "%row".to_string();
    if let Some(bias) = k.operand("bias") {
        let _ = writeln!(
            s,
            "          %e32 = memref.load %expert_for_source_row[%i, %j] : {}",
            k.ty("expert_for_source_row")
        );
        let _ = writeln!(s, "          %e = arith.index_cast %e32 : i32 to index");
        let _ = writeln!(s, "          %b_raw = memref.load %bias[%e, %c] : {}", memref(bias));
        let b = to_f32(&mut s, "b_f", "%b_raw", &bias.elem);
        let _ = writeln!(s, "          %with_bias = arith.addf %row, {b} : f32");
        term = "%with_bias".into();
    }
    if let Some(scales) = k.operand("scales") {
        let _ = writeln!(s, "          %s_raw = memref.load %scales[%i, %j] : {}", memref(scales));
        let sv = to_f32(&mut s, "s_f", "%s_raw", &scales.elem);
        let _ = writeln!(s, "          %scaled = arith.mulf {sv}, {term} : f32");
        term = "%scaled".into();
    }
    let _ = writeln!(s, "          %next = arith.addf %acc, {term} : f32");
    let _ = writeln!(s, "          scf.yield %next : f32");
    let _ = writeln!(s, "        }}");
    let stored = if out.elem == Elem::F32 {
        "%sum".to_string()
    } else {
        let _ = writeln!(s, "        %rounded = arith.truncf %sum : f32 to {}", out.elem);
        "%rounded".to_string()
    };
    let _ = writeln!(s, "        memref.store {stored}, %out0[%i, %c] : {}", memref(out));
    let _ = writeln!(s, "      }}");
    let _ = writeln!(s, "    }}");
    let _ = writeln!(s, "  }}");
    let _ = writeln!(s, "  return\n}}");
    s
}

/// `npu.grouped_matmul`: per listed group, rows times the group's weight, vectorized over output
/// columns; rows at or past sum(group_list) are zero.
/// With `vnni`, an int8 NZ weight is accumulated with AVX-512 VNNI (see [`super::vnni`]).
pub fn grouped_matmul(k: &OpKernel, vnni: bool) -> String {
    let mut s = String::new();
    k.header(&mut s);
    let x = k.operand("x").cloned().unwrap_or_else(|| k.results[0].clone());
    let w = k.operand("weight").cloned().unwrap_or_else(|| k.results[0].clone());
    let gl = k.operand("group_list").cloned().unwrap_or_else(|| k.results[0].clone());
    let out = &k.results[0];
    let (m, kk) = (x.dim(0).unwrap_or(0), x.dim(1).unwrap_or(0));
    let n = out.dim(1).unwrap_or(0);
    let e = w.dim(0).unwrap_or(0);
    let list_type = k.attr("group_list_type");
    let listed = gl.dim(0).unwrap_or(0);
    let quantized = x.elem == Elem::I8;
    let nz = w.rank() == 5;
    let v: u64 = if nz { 32 } else { 16 };
    let blocks = n.div_ceil(v);
    let out_ty = memref(out);
    let _ = writeln!(s, "  %cL = arith.constant {listed} : index");
    let _ = writeln!(s, "  %cK = arith.constant {kk} : index");
    let _ = writeln!(s, "  %cv = arith.constant {v} : index");
    let _ = writeln!(s, "  %cBlocks = arith.constant {blocks} : index");
    let _ = writeln!(s, "  %m64 = arith.constant {m} : i64");
    let _ = writeln!(s, "  %e64 = arith.constant {e} : i64");
    // 1. (group, first row, end row) of every listed group, checked.
    let _ = writeln!(s, "  %gid = memref.alloca() : memref<{}xi64>", listed.max(1));
    let _ = writeln!(s, "  %gend = memref.alloca() : memref<{}xi64>", listed.max(1));
    let _ = writeln!(
        s,
        "  %groups:2 = scf.for %j = %c0 to %cL step %c1 iter_args(%sum = %z64, %ok = %true) -> (i64, i1) {{"
    );
    match list_type {
        2 => {
            let _ = writeln!(s, "    %g = memref.load %group_list[%j, %c0] : {}", memref(&gl));
            let _ = writeln!(s, "    %count = memref.load %group_list[%j, %c1] : {}", memref(&gl));
            let _ = writeln!(s, "    %gneg = arith.cmpi slt, %g, %z64 : i64");
            let _ = writeln!(s, "    %gbig = arith.cmpi sge, %g, %e64 : i64");
            let _ = writeln!(s, "    %gbad = arith.ori %gneg, %gbig : i1");
        }
        0 => {
            let _ = writeln!(s, "    %listed_v = memref.load %group_list[%j] : {}", memref(&gl));
            let _ = writeln!(s, "    %count = arith.subi %listed_v, %sum : i64");
            let _ = writeln!(s, "    %g = arith.index_cast %j : index to i64");
            let _ = writeln!(s, "    %gbad = arith.constant false");
        }
        _ => {
            let _ = writeln!(s, "    %count = memref.load %group_list[%j] : {}", memref(&gl));
            let _ = writeln!(s, "    %g = arith.index_cast %j : index to i64");
            let _ = writeln!(s, "    %gbad = arith.constant false");
        }
    }
    let _ = writeln!(s, "    %negative = arith.cmpi slt, %count, %z64 : i64");
    let _ = writeln!(s, "    %bad = arith.ori %negative, %gbad : i1");
    let _ = writeln!(s, "    %first = arith.andi %ok, %bad : i1");
    let _ = writeln!(s, "    scf.if %first {{");
    let _ = writeln!(s, "      %shown = arith.select %gbad, %g, %count : i64");
    let bound = if list_type == 2 { "%e64" } else { "%z64" };
    let code = if list_type == 2 {
        status::INDEX_OUT_OF_RANGE
    } else {
        status::NEGATIVE_COUNT
    };
    let _ = writeln!(s, "      %code_sel = arith.constant {code} : i64");
    let _ = writeln!(s, "      %neg_code = arith.constant {} : i64", status::NEGATIVE_COUNT);
    let _ = writeln!(s, "      %the_code = arith.select %gbad, %code_sel, %neg_code : i64");
    let _ = writeln!(s, "      %ji = arith.index_cast %j : index to i64");
    let _ = writeln!(s, "      %s0 = arith.constant 0 : index");
    let _ = writeln!(s, "      %s1 = arith.constant 1 : index");
    let _ = writeln!(s, "      %s2 = arith.constant 2 : index");
    let _ = writeln!(s, "      %s3 = arith.constant 3 : index");
    let _ = writeln!(s, "      memref.store %the_code, %status[%s0] : memref<4xi64>");
    let _ = writeln!(s, "      memref.store %ji, %status[%s1] : memref<4xi64>");
    let _ = writeln!(s, "      memref.store %shown, %status[%s2] : memref<4xi64>");
    let _ = writeln!(s, "      memref.store {bound}, %status[%s3] : memref<4xi64>");
    let _ = writeln!(s, "    }}");
    let _ = writeln!(s, "    %good = arith.xori %bad, %true : i1");
    let _ = writeln!(s, "    %still = arith.andi %ok, %good : i1");
    let _ = writeln!(s, "    %next = arith.addi %sum, %count : i64");
    let _ = writeln!(s, "    memref.store %g, %gid[%j] : memref<{}xi64>", listed.max(1));
    let _ = writeln!(s, "    memref.store %next, %gend[%j] : memref<{}xi64>", listed.max(1));
    let _ = writeln!(s, "    scf.yield %next, %still : i64, i1");
    let _ = writeln!(s, "  }}");
    let _ = writeln!(s, "  %over = arith.cmpi sgt, %groups#0, %m64 : i64");
    let _ = writeln!(s, "  %over_first = arith.andi %groups#1, %over : i1");
    let _ = writeln!(s, "  scf.if %over_first {{");
    let _ = writeln!(s, "    %code2 = arith.constant {} : i64", status::SUM_EXCEEDS_M);
    let _ = writeln!(s, "    %s0 = arith.constant 0 : index");
    let _ = writeln!(s, "    %s2 = arith.constant 2 : index");
    let _ = writeln!(s, "    %s3 = arith.constant 3 : index");
    let _ = writeln!(s, "    memref.store %code2, %status[%s0] : memref<4xi64>");
    let _ = writeln!(s, "    memref.store %groups#0, %status[%s2] : memref<4xi64>");
    let _ = writeln!(s, "    memref.store %m64, %status[%s3] : memref<4xi64>");
    let _ = writeln!(s, "  }}");
    let _ = writeln!(s, "  %not_over = arith.xori %over, %true : i1");
    let _ = writeln!(s, "  %valid = arith.andi %groups#1, %not_over : i1");
    // 2. Zeros, then every listed group's rows.
    let _ = writeln!(s, "  scf.if %valid {{");
    let _ = writeln!(s, "    %out_zero = arith.constant {} : {}", zero(&out.elem), out.elem);
    let _ = writeln!(
        s,
        "    linalg.fill ins(%out_zero : {}) outs(%out0 : {out_ty})",
        out.elem
    );
    let _ = writeln!(s, "    scf.parallel (%block) = (%c0) to (%cBlocks) step (%c1) {{");
    let _ = writeln!(s, "      %col = arith.muli %block, %cv : index");
    let use_vnni = vnni && quantized && nz;
    let vnni_names = VnniNames {
        weight: "%weight",
        weight_type: memref(&w),
        x: "%x",
        x_type: memref(&x),
        k: kk,
    };
    if use_vnni {
        vnni::alloc_packed(&mut s, kk);
    }
    let _ = writeln!(s, "      scf.for %j = %c0 to %cL step %c1 {{");
    let _ = writeln!(s, "        %g64 = memref.load %gid[%j] : memref<{}xi64>", listed.max(1));
    let _ = writeln!(
        s,
        "        %end64 = memref.load %gend[%j] : memref<{}xi64>",
        listed.max(1)
    );
    let _ = writeln!(s, "        %is_first = arith.cmpi eq, %j, %c0 : index");
    let _ = writeln!(s, "        %jm1 = arith.subi %j, %c1 : index");
    let _ = writeln!(s, "        %prev_j = arith.select %is_first, %c0, %jm1 : index");
    let _ = writeln!(
        s,
        "        %prev64 = memref.load %gend[%prev_j] : memref<{}xi64>",
        listed.max(1)
    );
    let _ = writeln!(s, "        %start64 = arith.select %is_first, %z64, %prev64 : i64");
    let _ = writeln!(s, "        %g = arith.index_cast %g64 : i64 to index");
    let _ = writeln!(s, "        %start = arith.index_cast %start64 : i64 to index");
    let _ = writeln!(s, "        %end = arith.index_cast %end64 : i64 to index");
    let vi = format!("vector<{v}xi32>");
    let vf = format!("vector<{v}xf32>");
    let has_scale = k.operand("scale").is_some();
    if has_scale {
        let scale = k.operand("scale").cloned().unwrap_or_else(|| out.clone());
        if scale.elem == Elem::F32 {
            let _ = writeln!(
                s,
                "        %scale_v = vector.transfer_read %scale[%g, %col], %zf : {}, {vf}",
                memref(&scale)
            );
        } else {
            let _ = writeln!(s, "        %scale_pad = arith.constant 0.0 : {}", scale.elem);
            let _ = writeln!(
                s,
                "        %scale_raw = vector.transfer_read %scale[%g, %col], %scale_pad : {}, vector<{v}x{}>",
                memref(&scale),
                scale.elem
            );
            let _ = writeln!(
                s,
                "        %scale_v = arith.extf %scale_raw : vector<{v}x{}> to {vf}",
                scale.elem
            );
        }
    }
    let bias = k.operand("bias").cloned();
    if let Some(bias) = &bias {
        if quantized {
            let _ = writeln!(s, "        %bias_pad = arith.constant 0 : i32");
            let _ = writeln!(
                s,
                "        %bias_v = vector.transfer_read %bias[%g, %col], %bias_pad : {}, {vi}",
                memref(bias)
            );
        } else if bias.elem == Elem::F32 {
            let _ = writeln!(
                s,
                "        %bias_v = vector.transfer_read %bias[%g, %col], %zf : {}, {vf}",
                memref(bias)
            );
        } else {
            let _ = writeln!(s, "        %bias_pad = arith.constant 0.0 : {}", bias.elem);
            let _ = writeln!(
                s,
                "        %bias_raw = vector.transfer_read %bias[%g, %col], %bias_pad : {}, vector<{v}x{}>",
                memref(bias),
                bias.elem
            );
            let _ = writeln!(
                s,
                "        %bias_v = arith.extf %bias_raw : vector<{v}x{}> to {vf}",
                bias.elem
            );
        }
    }
    if use_vnni {
        vnni::pack(&mut s, &vnni_names);
    }
    let rows_loop_at = s.len();
    let _ = writeln!(s, "        scf.for %p = %start to %end step %c1 {{");
    let body_at = s.len();
    let result_vec: String;
    if use_vnni {
        vnni::accumulate_row(&mut s, &vnni_names);
    }
    if quantized && !use_vnni {
        let _ = writeln!(s, "          %acc0 = arith.constant dense<0> : {vi}");
        let _ = writeln!(s, "          %pad8 = arith.constant 0 : i8");
        let _ = writeln!(
            s,
            "          %acc = scf.for %kk = %c0 to %cK step %c1 iter_args(%a = %acc0) -> ({vi}) {{"
        );
        let _ = writeln!(s, "            %xs = memref.load %x[%p, %kk] : {}", memref(&x));
        let _ = writeln!(s, "            %x32 = arith.extsi %xs : i8 to i32");
        let _ = writeln!(s, "            %xb = vector.broadcast %x32 : i32 to {vi}");
        if nz {
            let _ = writeln!(s, "            %k1 = arith.divui %kk, %c16 : index");
            let _ = writeln!(s, "            %k0 = arith.remui %kk, %c16 : index");
            let _ = writeln!(
                s,
                "            %wv = vector.transfer_read %weight[%g, %block, %k1, %k0, %c0], %pad8 {{in_bounds = [true]}} : {}, vector<{v}xi8>",
                memref(&w)
            );
        } else {
            let _ = writeln!(
                s,
                "            %wv = vector.transfer_read %weight[%g, %kk, %col], %pad8 : {}, vector<{v}xi8>",
                memref(&w)
            );
        }
        let _ = writeln!(s, "            %w32 = arith.extsi %wv : vector<{v}xi8> to {vi}");
        let _ = writeln!(s, "            %prod = arith.muli %xb, %w32 : {vi}");
        let _ = writeln!(s, "            %next = arith.addi %a, %prod : {vi}");
        let _ = writeln!(s, "            scf.yield %next : {vi}");
        let _ = writeln!(s, "          }}");
    }
    if quantized {
        let acc = if bias.is_some() {
            let _ = writeln!(s, "          %acc_b = arith.addi %acc, %bias_v : {vi}");
            "%acc_b"
        } else {
            "%acc"
        };
        if has_scale {
            let _ = writeln!(s, "          %accf = arith.sitofp {acc} : {vi} to {vf}");
            let _ = writeln!(s, "          %dq = arith.mulf %accf, %scale_v : {vf}");
            if k.operand("per_token_scale").is_some() {
                let _ = writeln!(
                    s,
                    "          %pts = memref.load %per_token_scale[%p] : {}",
                    k.ty("per_token_scale")
                );
                let _ = writeln!(s, "          %ptsb = vector.broadcast %pts : f32 to {vf}");
                let _ = writeln!(s, "          %y = arith.mulf %dq, %ptsb : {vf}");
                result_vec = "%y".into();
            } else {
                result_vec = "%dq".into();
            }
        } else {
            result_vec = acc.to_string();
        }
    } else {
        let elem = x.elem.clone();
        let _ = writeln!(s, "          %acc0 = arith.constant dense<0.0> : {vf}");
        let _ = writeln!(s, "          %wpad = arith.constant 0.0 : {elem}");
        let _ = writeln!(
            s,
            "          %acc = scf.for %kk = %c0 to %cK step %c1 iter_args(%a = %acc0) -> ({vf}) {{"
        );
        let _ = writeln!(s, "            %xs = memref.load %x[%p, %kk] : {}", memref(&x));
        let _ = writeln!(
            s,
            "            %wv = vector.transfer_read %weight[%g, %kk, %col], %wpad : {}, vector<{v}x{elem}>",
            memref(&w)
        );
        if elem == Elem::F32 {
            let _ = writeln!(s, "            %xb = vector.broadcast %xs : f32 to {vf}");
            let _ = writeln!(s, "            %prod = arith.mulf %xb, %wv : {vf}");
        } else {
            let _ = writeln!(s, "            %xf = arith.extf %xs : {elem} to f32");
            let _ = writeln!(s, "            %xb = vector.broadcast %xf : f32 to {vf}");
            let _ = writeln!(s, "            %wf = arith.extf %wv : vector<{v}x{elem}> to {vf}");
            let _ = writeln!(s, "            %prod = arith.mulf %xb, %wf : {vf}");
        }
        let _ = writeln!(s, "            %next = arith.addf %a, %prod : {vf}");
        let _ = writeln!(s, "            scf.yield %next : {vf}");
        let _ = writeln!(s, "          }}");
        result_vec = if bias.is_some() {
            let _ = writeln!(s, "          %acc_b = arith.addf %acc, %bias_v : {vf}");
            "%acc_b".into()
        } else {
            "%acc".into()
        };
    }
    let stored = match &out.elem {
        Elem::F32 | Elem::I32 => result_vec,
        other => {
            let _ = writeln!(
                s,
                "          %rounded = arith.truncf {result_vec} : {vf} to vector<{v}x{other}>"
            );
            "%rounded".into()
        }
    };
    let _ = writeln!(
        s,
        "          vector.transfer_write {stored}, %out0[%p, %col] : vector<{v}x{}>, {out_ty}",
        out.elem
    );
    let _ = writeln!(s, "        }}");
    if use_vnni {
        vnni::tile_rows(&mut s, rows_loop_at, body_at, &vnni_names);
    }
    let _ = writeln!(s, "      }}");
    if use_vnni {
        vnni::dealloc_packed(&mut s, kk);
    }
    let _ = writeln!(s, "      scf.reduce");
    let _ = writeln!(s, "    }}");
    let _ = writeln!(s, "  }}");
    let _ = writeln!(s, "  return\n}}");
    s
}
