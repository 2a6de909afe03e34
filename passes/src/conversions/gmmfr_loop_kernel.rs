//! The loop nest of `npu.grouped_matmul_finalize_routing` on memrefs, as MLIR text: checks of the
//! runtime preconditions before any write (with the first failure recorded in the status
//! global), zero-init and the shared-input slice, then a parallel loop over output-column blocks
//! in which each expert's rows are multiplied, dequantized, weighted and scatter-added, the
//! (m, n) intermediate never leaving registers. Contributions to an output row are added in
//! increasing row order within each column block, so results are deterministic and match the
//! reference semantics' f32 arithmetic.

use super::vnni::{self, VnniNames};
use gmmfr_dialect::scenario::Scenario;
use gmmfr_dialect::types::{Elem, TensorInfo};
use std::fmt::Write;

/// The module-level status global the kernels write: [code, index, value, bound].
pub const STATUS_GLOBAL: &str = "__gmmfr_status";
/// Status codes written to the global.
pub mod status {
    /// A group count is negative (or a cumsum list decreases).
    pub const NEGATIVE_COUNT: i64 = 1;
    /// sum(group_list) exceeds m.
    pub const SUM_EXCEEDS_M: i64 = 2;
    /// An active row_index is outside [0, output rows).
    pub const ROW_INDEX_OUT_OF_RANGE: i64 = 3;
    /// An index (routing map entry, expert id) is outside its range.
    pub const INDEX_OUT_OF_RANGE: i64 = 4;
}

/// Everything about one fused op the kernel text depends on.
pub struct KernelSpec {
    /// Kernel function name.
    pub name: String,
    /// The scenario.
    pub scenario: Scenario,
    /// Operand types by declared name (present operands only).
    pub operands: Vec<(&'static str, TensorInfo)>,
    /// Output type.
    pub out: TensorInfo,
    /// Attributes.
    pub shared_input_weight: f32,
    /// Row offset of shared_input.
    pub shared_input_offset: i64,
    /// 0 cumsum, 1 counts.
    pub group_list_type: i64,
    /// Use AVX-512 VNNI dot products for the A8W8 accumulation (the host must have them).
    pub vnni: bool,
}

fn memref(info: &TensorInfo) -> String {
    let mut text = String::from("memref<");
    for d in &info.dims {
        match d {
            Some(d) => {
                let _ = write!(text, "{d}x");
            }
            None => text.push_str("?x"),
        }
    }
    let _ = write!(text, "{}>", info.elem);
    text
}

impl KernelSpec {
    fn operand(&self, name: &str) -> Option<&TensorInfo> {
        self.operands.iter().find(|(n, _)| *n == name).map(|(_, i)| i)
    }

    /// The memref types of the kernel's parameters: every present operand, then the output.
    pub fn parameter_types(&self) -> Vec<String> {
        self.operands
            .iter()
            .map(|(_, i)| memref(i))
            .chain(std::iter::once(memref(&self.out)))
            .collect()
    }
}

/// Vector width over output columns: one NZ block (32 int8 columns) for A8W8, 16 otherwise.
fn lanes(scenario: &Scenario) -> u64 {
    match scenario {
        Scenario::A8W8 => 32,
        _ => 16,
    }
}

/// The kernel's text (one `func.func private`). Shapes must be static.
pub fn kernel_text(spec: &KernelSpec) -> String {
    let m = spec.operand("x").and_then(|x| x.dim(0)).unwrap_or(0);
    let k = spec.operand("x").and_then(|x| x.dim(1)).unwrap_or(0);
    let e = spec.operand("group_list").and_then(|g| g.dim(0)).unwrap_or(0);
    let rows = spec.out.dim(0).unwrap_or(0);
    let n = spec.out.dim(1).unwrap_or(0);
    let v = lanes(&spec.scenario);
    let blocks = n.div_ceil(v);
    let mut s = String::new();
    let params: Vec<String> = spec
        .operands
        .iter()
        .map(|(name, info)| format!("%{name}: {}", memref(info)))
        .chain(std::iter::once(format!("%out: {}", memref(&spec.out))))
        .collect();
    let ty = |name: &str| spec.operand(name).map(memref).unwrap_or_default();
    let _ = writeln!(s, "func.func private @{}({}) {{", spec.name, params.join(", "));
    let _ = writeln!(s, "  %status = memref.get_global @{STATUS_GLOBAL} : memref<4xi64>");
    for (name, value, t) in [
        ("c0", "0", "index"),
        ("c1", "1", "index"),
        ("c16", "16", "index"),
        ("cv", &v.to_string(), "index"),
    ] {
        let _ = writeln!(s, "  %{name} = arith.constant {value} : {t}");
    }
    let _ = writeln!(s, "  %cE = arith.constant {e} : index");
    let _ = writeln!(s, "  %cK = arith.constant {k} : index");
    let _ = writeln!(s, "  %cBlocks = arith.constant {blocks} : index");
    let _ = writeln!(s, "  %z64 = arith.constant 0 : i64");
    let _ = writeln!(s, "  %m64 = arith.constant {m} : i64");
    let _ = writeln!(s, "  %rows64 = arith.constant {rows} : i64");
    let _ = writeln!(s, "  %true = arith.constant true");
    let _ = writeln!(s, "  %zf = arith.constant 0.0 : f32");
    // 1. Group starts, counts >= 0, sum <= m.
    let _ = writeln!(s, "  %starts = memref.alloca() : memref<{}xi64>", e + 1);
    let _ = writeln!(s, "  memref.store %z64, %starts[%c0] : memref<{}xi64>", e + 1);
    let _ = writeln!(
        s,
        "  %groups:2 = scf.for %g = %c0 to %cE step %c1 iter_args(%sum = %z64, %ok = %true) -> (i64, i1) {{"
    );
    let _ = writeln!(s, "    %listed = memref.load %group_list[%g] : {}", ty("group_list"));
    if spec.group_list_type == 0 {
        let _ = writeln!(s, "    %count = arith.subi %listed, %sum : i64");
    } else {
        let _ = writeln!(s, "    %count = arith.addi %listed, %z64 : i64");
    }
    let _ = writeln!(s, "    %negative = arith.cmpi slt, %count, %z64 : i64");
    let _ = writeln!(s, "    %first_failure = arith.andi %ok, %negative : i1");
    let _ = writeln!(s, "    scf.if %first_failure {{");
    write_status(
        &mut s,
        "      ",
        status::NEGATIVE_COUNT,
        "%g_i64",
        Some("%g"),
        "%listed",
        "%z64",
    );
    let _ = writeln!(s, "    }}");
    let _ = writeln!(s, "    %not_negative = arith.xori %negative, %true : i1");
    let _ = writeln!(s, "    %still_ok = arith.andi %ok, %not_negative : i1");
    let _ = writeln!(s, "    %next = arith.addi %sum, %count : i64");
    let _ = writeln!(s, "    %g1 = arith.addi %g, %c1 : index");
    let _ = writeln!(s, "    memref.store %next, %starts[%g1] : memref<{}xi64>", e + 1);
    let _ = writeln!(s, "    scf.yield %next, %still_ok : i64, i1");
    let _ = writeln!(s, "  }}");
    let _ = writeln!(s, "  %over = arith.cmpi sgt, %groups#0, %m64 : i64");
    let _ = writeln!(s, "  %over_first = arith.andi %groups#1, %over : i1");
    let _ = writeln!(s, "  scf.if %over_first {{");
    write_status(
        &mut s,
        "    ",
        status::SUM_EXCEEDS_M,
        "%groups#0",
        None,
        "%groups#0",
        "%m64",
    );
    let _ = writeln!(s, "  }}");
    let _ = writeln!(s, "  %not_over = arith.xori %over, %true : i1");
    let _ = writeln!(s, "  %counts_ok = arith.andi %groups#1, %not_over : i1");
    // 2. Active row indices in range (only rows below the sum are read).
    let ri_elem = spec.operand("row_index").map(|r| r.elem.clone()).unwrap_or(Elem::I64);
    let _ = writeln!(s, "  %valid = scf.if %counts_ok -> (i1) {{");
    let _ = writeln!(s, "    %active = arith.index_cast %groups#0 : i64 to index");
    let _ = writeln!(
        s,
        "    %rows_ok = scf.for %p = %c0 to %active step %c1 iter_args(%ok = %true) -> (i1) {{"
    );
    let _ = writeln!(s, "      %raw = memref.load %row_index[%p] : {}", ty("row_index"));
    if ri_elem == Elem::I32 {
        let _ = writeln!(s, "      %r = arith.extsi %raw : i32 to i64");
    } else {
        let _ = writeln!(s, "      %r = arith.addi %raw, %z64 : i64");
    }
    let _ = writeln!(s, "      %below = arith.cmpi slt, %r, %z64 : i64");
    let _ = writeln!(s, "      %above = arith.cmpi sge, %r, %rows64 : i64");
    let _ = writeln!(s, "      %outside = arith.ori %below, %above : i1");
    let _ = writeln!(s, "      %first = arith.andi %ok, %outside : i1");
    let _ = writeln!(s, "      scf.if %first {{");
    write_status(
        &mut s,
        "        ",
        status::ROW_INDEX_OUT_OF_RANGE,
        "%p_i64",
        Some("%p"),
        "%r",
        "%rows64",
    );
    let _ = writeln!(s, "      }}");
    let _ = writeln!(s, "      %inside = arith.xori %outside, %true : i1");
    let _ = writeln!(s, "      %next_ok = arith.andi %ok, %inside : i1");
    let _ = writeln!(s, "      scf.yield %next_ok : i1");
    let _ = writeln!(s, "    }}");
    let _ = writeln!(s, "    scf.yield %rows_ok : i1");
    let _ = writeln!(s, "  }} else {{");
    let _ = writeln!(s, "    %false = arith.constant false");
    let _ = writeln!(s, "    scf.yield %false : i1");
    let _ = writeln!(s, "  }}");
    // 3. Output: zeros, the shared slice, then the grouped matmul + epilogue per column block.
    let out_ty = memref(&spec.out);
    let _ = writeln!(s, "  scf.if %valid {{");
    let _ = writeln!(s, "    linalg.fill ins(%zf : f32) outs(%out : {out_ty})");
    if let Some(shared) = spec.operand("shared_input") {
        let bsdp = shared.dim(0).unwrap_or(0);
        let _ = writeln!(s, "    %bsdp = arith.constant {bsdp} : index");
        let _ = writeln!(s, "    %shared_cols = arith.constant {n} : index");
        let _ = writeln!(
            s,
            "    %shared_offset = arith.constant {} : index",
            spec.shared_input_offset
        );
        let _ = writeln!(
            s,
            "    %weight = arith.constant 0x{:08X} : f32",
            spec.shared_input_weight.to_bits()
        );
        let _ = writeln!(s, "    scf.for %i = %c0 to %bsdp step %c1 {{");
        let _ = writeln!(s, "      %row = arith.addi %i, %shared_offset : index");
        let _ = writeln!(s, "      scf.for %j = %c0 to %shared_cols step %c1 {{");
        let _ = writeln!(
            s,
            "        %sv = memref.load %shared_input[%i, %j] : {}",
            memref(shared)
        );
        let _ = writeln!(s, "        %sf = arith.extf %sv : bf16 to f32");
        let _ = writeln!(s, "        %sw = arith.mulf %sf, %weight : f32");
        let _ = writeln!(s, "        memref.store %sw, %out[%row, %j] : {out_ty}");
        let _ = writeln!(s, "      }}");
        let _ = writeln!(s, "    }}");
    }
    let _ = writeln!(s, "    scf.parallel (%block) = (%c0) to (%cBlocks) step (%c1) {{");
    let _ = writeln!(s, "      %col = arith.muli %block, %cv : index");
    let vnni_pack = spec.vnni && spec.scenario == Scenario::A8W8;
    if vnni_pack {
        vnni::alloc_packed(&mut s, k);
    }
    let _ = writeln!(s, "      scf.for %g = %c0 to %cE step %c1 {{");
    let _ = writeln!(s, "        %g1 = arith.addi %g, %c1 : index");
    let _ = writeln!(s, "        %start64 = memref.load %starts[%g] : memref<{}xi64>", e + 1);
    let _ = writeln!(s, "        %end64 = memref.load %starts[%g1] : memref<{}xi64>", e + 1);
    let _ = writeln!(s, "        %start = arith.index_cast %start64 : i64 to index");
    let _ = writeln!(s, "        %end = arith.index_cast %end64 : i64 to index");
    let vf = format!("vector<{v}xf32>");
    let vi = format!("vector<{v}xi32>");
    // Per-group column vectors: the dequant scale (and the A8W8 bias / A8W4 bias and offset).
    match &spec.scenario {
        Scenario::A8W8 => {
            let scale = spec.operand("scale").cloned();
            let scale_elem = scale.as_ref().map(|s| s.elem.to_string()).unwrap_or_default();
            let _ = writeln!(s, "        %scale_pad = arith.constant 0.0 : {scale_elem}");
            if scale_elem != "f32" {
                let _ = writeln!(
                    s,
                    "        %scale_raw = vector.transfer_read %scale[%g, %col], %scale_pad : {}, vector<{v}x{scale_elem}>",
                    ty("scale")
                );
            }
            if scale_elem == "f32" {
                // An identity the canonicalizer removes; it keeps one name for both scale types.
                let _ = writeln!(
                    s,
                    "        %scale_v = vector.transfer_read %scale[%g, %col], %scale_pad : {}, {vf}",
                    ty("scale")
                );
            } else {
                let _ = writeln!(
                    s,
                    "        %scale_v = arith.extf %scale_raw : vector<{v}x{scale_elem}> to {vf}"
                );
            }
            if spec.operand("bias").is_some() {
                let _ = writeln!(s, "        %bias_pad = arith.constant 0.0 : bf16");
                let _ = writeln!(
                    s,
                    "        %bias_raw = vector.transfer_read %bias[%g, %col], %bias_pad : {}, vector<{v}xbf16>",
                    ty("bias")
                );
                let _ = writeln!(s, "        %bias_v = arith.extf %bias_raw : vector<{v}xbf16> to {vf}");
            }
        }
        Scenario::A8W4 { .. } => {
            let _ = writeln!(s, "        %scale_pad = arith.constant 0 : i64");
            let _ = writeln!(
                s,
                "        %scale_raw = vector.transfer_read %scale[%g, %c0, %col], %scale_pad {{permutation_map = affine_map<(d0, d1, d2) -> (d2)>}} : {}, vector<{v}xi64>",
                ty("scale")
            );
            let _ = writeln!(
                s,
                "        %scale_bits = arith.trunci %scale_raw : vector<{v}xi64> to {vi}"
            );
            let _ = writeln!(s, "        %scale_v = arith.bitcast %scale_bits : {vi} to {vf}");
            let _ = writeln!(
                s,
                "        %bias_v = vector.transfer_read %bias[%g, %col], %zf : {}, {vf}",
                ty("bias")
            );
            if spec.operand("offset").is_some() {
                let _ = writeln!(
                    s,
                    "        %offset_v = vector.transfer_read %offset[%g, %c0, %col], %zf {{permutation_map = affine_map<(d0, d1, d2) -> (d2)>}} : {}, {vf}",
                    ty("offset")
                );
            }
        }
        Scenario::NonQuantized(_) => {
            if spec.operand("bias").is_some() {
                let _ = writeln!(
                    s,
                    "        %bias_v = vector.transfer_read %bias[%g, %col], %zf : {}, {vf}",
                    ty("bias")
                );
            }
        }
    }
    let vnni_names = VnniNames {
        weight: "%w",
        weight_type: ty("w"),
        x: "%x",
        x_type: ty("x"),
        k,
    };
    if vnni_pack {
        vnni::pack(&mut s, &vnni_names);
    }
    let rows_loop_at = s.len();
    let _ = writeln!(s, "        scf.for %p = %start to %end step %c1 {{");
    let body_at = s.len();
    // The accumulation over k.
    match &spec.scenario {
        Scenario::A8W8 if spec.vnni => {
            vnni::accumulate_row(&mut s, &vnni_names);
            let _ = writeln!(s, "          %accf = arith.sitofp %acc : {vi} to {vf}");
            let _ = writeln!(s, "          %dequant = arith.mulf %accf, %scale_v : {vf}");
        }
        Scenario::A8W8 => {
            let _ = writeln!(s, "          %acc0 = arith.constant dense<0> : {vi}");
            let _ = writeln!(s, "          %pad8 = arith.constant 0 : i8");
            let _ = writeln!(
                s,
                "          %acc = scf.for %kk = %c0 to %cK step %c1 iter_args(%a = %acc0) -> ({vi}) {{"
            );
            let _ = writeln!(s, "            %xs = memref.load %x[%p, %kk] : {}", ty("x"));
            let _ = writeln!(s, "            %x32 = arith.extsi %xs : i8 to i32");
            let _ = writeln!(s, "            %xb = vector.broadcast %x32 : i32 to {vi}");
            let _ = writeln!(s, "            %k1 = arith.divui %kk, %c16 : index");
            let _ = writeln!(s, "            %k0 = arith.remui %kk, %c16 : index");
            let _ = writeln!(
                s,
                "            %wv = vector.transfer_read %w[%g, %block, %k1, %k0, %c0], %pad8 {{in_bounds = [true]}} : {}, vector<{v}xi8>",
                ty("w")
            );
            let _ = writeln!(s, "            %w32 = arith.extsi %wv : vector<{v}xi8> to {vi}");
            let _ = writeln!(s, "            %prod = arith.muli %xb, %w32 : {vi}");
            let _ = writeln!(s, "            %next = arith.addi %a, %prod : {vi}");
            let _ = writeln!(s, "            scf.yield %next : {vi}");
            let _ = writeln!(s, "          }}");
            let _ = writeln!(s, "          %accf = arith.sitofp %acc : {vi} to {vf}");
            let _ = writeln!(s, "          %dequant = arith.mulf %accf, %scale_v : {vf}");
        }
        Scenario::A8W4 { nz } => {
            // Scalar over the columns of this block: int4 weights are one value per byte in
            // memory, which vector loads of i4 would not respect.
            let _ = writeln!(s, "          %acc0 = arith.constant dense<0> : {vi}");
            let _ = writeln!(s, "          %c8 = arith.constant 8 : i32");
            let _ = writeln!(s, "          %c0_i32_init = arith.constant 0 : i32");
            let _ = writeln!(s, "          %cN = arith.constant {n} : index");
            let _ = writeln!(
                s,
                "          %acc:2 = scf.for %kk = %c0 to %cK step %c1 iter_args(%a = %acc0, %rowsum = %c0_i32_init) -> ({vi}, i32) {{"
            );
            let _ = writeln!(s, "            %xs = memref.load %x[%p, %kk] : {}", ty("x"));
            let _ = writeln!(s, "            %x32 = arith.extsi %xs : i8 to i32");
            let _ = writeln!(s, "            %xm8 = arith.subi %x32, %c8 : i32");
            let _ = writeln!(s, "            %rs = arith.addi %rowsum, %x32 : i32");
            let _ = writeln!(
                s,
                "            %lanes = scf.for %lane = %c0 to %cv step %c1 iter_args(%vec = %a) -> ({vi}) {{"
            );
            let _ = writeln!(s, "              %nn = arith.addi %col, %lane : index");
            let _ = writeln!(s, "              %in = arith.cmpi ult, %nn, %cN : index");
            let _ = writeln!(s, "              %updated = scf.if %in -> ({vi}) {{");
            if *nz {
                let _ = writeln!(s, "                %c64 = arith.constant 64 : index");
                let _ = writeln!(s, "                %n1 = arith.divui %nn, %c64 : index");
                let _ = writeln!(s, "                %n0 = arith.remui %nn, %c64 : index");
                let _ = writeln!(s, "                %k1 = arith.divui %kk, %c16 : index");
                let _ = writeln!(s, "                %k0 = arith.remui %kk, %c16 : index");
                let _ = writeln!(
                    s,
                    "                %w4 = memref.load %w[%g, %n1, %k1, %k0, %n0] : {}",
                    ty("w")
                );
            } else {
                let _ = writeln!(s, "                %w4 = memref.load %w[%g, %kk, %nn] : {}", ty("w"));
            }
            let _ = writeln!(s, "                %w32 = arith.extsi %w4 : i4 to i32");
            let _ = writeln!(s, "                %prod = arith.muli %xm8, %w32 : i32");
            let _ = writeln!(s, "                %old = vector.extract %vec[%lane] : i32 from {vi}");
            let _ = writeln!(s, "                %sum = arith.addi %old, %prod : i32");
            let _ = writeln!(
                s,
                "                %ins = vector.insert %sum, %vec [%lane] : i32 into {vi}"
            );
            let _ = writeln!(s, "                scf.yield %ins : {vi}");
            let _ = writeln!(s, "              }} else {{");
            let _ = writeln!(s, "                scf.yield %vec : {vi}");
            let _ = writeln!(s, "              }}");
            let _ = writeln!(s, "              scf.yield %updated : {vi}");
            let _ = writeln!(s, "            }}");
            let _ = writeln!(s, "            scf.yield %lanes, %rs : {vi}, i32");
            let _ = writeln!(s, "          }}");
            let _ = writeln!(s, "          %accf = arith.sitofp %acc#0 : {vi} to {vf}");
            let _ = writeln!(s, "          %scaled = arith.mulf %accf, %scale_v : {vf}");
            let _ = writeln!(s, "          %with_bias = arith.addf %scaled, %bias_v : {vf}");
            if spec.operand("offset").is_some() {
                let _ = writeln!(s, "          %rowsum_f = arith.sitofp %acc#1 : i32 to f32");
                let _ = writeln!(s, "          %rowsum_v = vector.broadcast %rowsum_f : f32 to {vf}");
                let _ = writeln!(s, "          %off_term = arith.mulf %rowsum_v, %offset_v : {vf}");
                let _ = writeln!(s, "          %bracket = arith.addf %with_bias, %off_term : {vf}");
            }
        }
        Scenario::NonQuantized(elem) => {
            let _ = writeln!(s, "          %acc0 = arith.constant dense<0.0> : {vf}");
            let _ = writeln!(s, "          %wpad = arith.constant 0.0 : {elem}");
            let _ = writeln!(
                s,
                "          %acc = scf.for %kk = %c0 to %cK step %c1 iter_args(%a = %acc0) -> ({vf}) {{"
            );
            let _ = writeln!(s, "            %xs = memref.load %x[%p, %kk] : {}", ty("x"));
            let _ = writeln!(
                s,
                "            %wv = vector.transfer_read %w[%g, %kk, %col], %wpad : {}, vector<{v}x{elem}>",
                ty("w")
            );
            if *elem == Elem::F32 {
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
        }
    }
    // The row factor: pertoken_scale * logit, formed first (missing ones are 1).
    let has_pts = spec.operand("pertoken_scale").is_some();
    let has_logit = spec.operand("logit").is_some();
    if has_pts {
        let _ = writeln!(
            s,
            "          %pts_s = memref.load %pertoken_scale[%p] : {}",
            ty("pertoken_scale")
        );
    }
    if has_logit {
        let _ = writeln!(s, "          %logit_s = memref.load %logit[%p] : {}", ty("logit"));
    }
    let factor = match (has_pts, has_logit) {
        (true, true) => {
            let _ = writeln!(s, "          %factor = arith.mulf %pts_s, %logit_s : f32");
            Some("%factor")
        }
        (true, false) => Some("%pts_s"),
        (false, true) => Some("%logit_s"),
        (false, false) => None,
    };
    let y = match &spec.scenario {
        Scenario::A8W8 => {
            let mut y = "%dequant".to_string();
            if let Some(f) = factor {
                let _ = writeln!(s, "          %fb = vector.broadcast {f} : f32 to {vf}");
                let _ = writeln!(s, "          %weighted = arith.mulf %dequant, %fb : {vf}");
                y = "%weighted".into();
            }
            if spec.operand("bias").is_some() {
                // SPEC 1.4: the bias is weighted by logit only.
                let lb = if has_logit {
                    let _ = writeln!(s, "          %lb = vector.broadcast %logit_s : f32 to {vf}");
                    let _ = writeln!(s, "          %bias_w = arith.mulf %lb, %bias_v : {vf}");
                    "%bias_w"
                } else {
                    "%bias_v"
                };
                let _ = writeln!(s, "          %with_bias = arith.addf {y}, {lb} : {vf}");
                y = "%with_bias".into();
            }
            y
        }
        Scenario::A8W4 { .. } => {
            let bracket = if spec.operand("offset").is_some() {
                "%bracket"
            } else {
                "%with_bias"
            };
            match factor {
                Some(f) => {
                    let _ = writeln!(s, "          %fb = vector.broadcast {f} : f32 to {vf}");
                    let _ = writeln!(s, "          %weighted = arith.mulf %fb, {bracket} : {vf}");
                    "%weighted".into()
                }
                None => bracket.into(),
            }
        }
        Scenario::NonQuantized(_) => {
            let mut base = "%acc".to_string();
            if spec.operand("bias").is_some() {
                let _ = writeln!(s, "          %acc_bias = arith.addf %acc, %bias_v : {vf}");
                base = "%acc_bias".into();
            }
            match factor {
                Some(f) => {
                    let _ = writeln!(s, "          %fb = vector.broadcast {f} : f32 to {vf}");
                    let _ = writeln!(s, "          %weighted = arith.mulf {base}, %fb : {vf}");
                    "%weighted".into()
                }
                None => base,
            }
        }
    };
    let _ = writeln!(s, "          %raw_r = memref.load %row_index[%p] : {}", ty("row_index"));
    let _ = writeln!(s, "          %r = arith.index_cast %raw_r : {} to index", ri_elem);
    let _ = writeln!(
        s,
        "          %old = vector.transfer_read %out[%r, %col], %zf : {out_ty}, {vf}"
    );
    let _ = writeln!(s, "          %new = arith.addf %old, {y} : {vf}");
    let _ = writeln!(
        s,
        "          vector.transfer_write %new, %out[%r, %col] : {vf}, {out_ty}"
    );
    let _ = writeln!(s, "        }}");
    if vnni_pack {
        vnni::tile_rows(&mut s, rows_loop_at, body_at, &vnni_names);
    }
    let _ = writeln!(s, "      }}");
    if vnni_pack {
        vnni::dealloc_packed(&mut s, k);
    }
    let _ = writeln!(s, "      scf.reduce");
    let _ = writeln!(s, "    }}");
    let _ = writeln!(s, "  }}");
    let _ = writeln!(s, "  return");
    let _ = writeln!(s, "}}");
    s
}

/// Writes [code, index, value, bound] to the status global (first failure only: callers guard).
fn write_status(
    s: &mut String,
    indent: &str,
    code: i64,
    index_i64: &str,
    index: Option<&str>,
    value: &str,
    bound: &str,
) {
    if let Some(index) = index {
        let _ = writeln!(s, "{indent}{index_i64} = arith.index_cast {index} : index to i64");
    }
    let _ = writeln!(s, "{indent}%code = arith.constant {code} : i64");
    let _ = writeln!(s, "{indent}%s1 = arith.constant 1 : index");
    let _ = writeln!(s, "{indent}%s2 = arith.constant 2 : index");
    let _ = writeln!(s, "{indent}%s3 = arith.constant 3 : index");
    let _ = writeln!(s, "{indent}%s0 = arith.constant 0 : index");
    let _ = writeln!(s, "{indent}memref.store %code, %status[%s0] : memref<4xi64>");
    let _ = writeln!(s, "{indent}memref.store {index_i64}, %status[%s1] : memref<4xi64>");
    let _ = writeln!(s, "{indent}memref.store {value}, %status[%s2] : memref<4xi64>");
    let _ = writeln!(s, "{indent}memref.store {bound}, %status[%s3] : memref<4xi64>");
}
