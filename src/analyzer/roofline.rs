//! What fusing a candidate is worth: the memory traffic it removes and adds, its flops, and an
//! estimated time saving under a simple roofline model of the target.
//!
//! **This file is the one place the model's parameters live** ([`ASCEND_910B_CLASS`],
//! [`CPU_SERVER_CLASS`]). Every figure is an assumption, not a measurement: order-of-magnitude
//! numbers of the machine class, to rank candidates and to size the benefit, not to predict
//! kernel times.
//!
//! The model. Each kernel moves every operand it reads and every result it writes once, at its
//! full static size (`numel * bits / 8`), and takes `max(flops / peak, bytes / bandwidth)`;
//! kernels without a matmul are memory-bound (`bytes / bandwidth`). Kernel launch overhead,
//! caches and overlap between kernels are not modelled.
//!
//! - Unfused: the grouped matmul (its operands, its (m, n) output; `2 m k n` flops), finalize
//!   (the (m, n) rows, skip1, scales, the index map and its other operands, its output), and
//!   for drop_pad_mode 0 the `linalg.transpose` of the index map.
//! - Fused: the fused op (x, the NZ weight, group list, scales, shared_input, logit, row_index,
//!   the f32 (batch, n) output; the same flops), plus what the rewrite adds: the
//!   `linalg.generic` that materializes row_index and logit from gidx and the router weights,
//!   the `arith.truncf` of the f32 output back to finalize's type, the `format_cast` of an ND
//!   int8 weight, and the cumsum-to-counts conversion of the older release.
//!
//! Reported: `bytes_saved` = the intermediate traffic the fusion removes (the (m, n) output
//! written by the grouped matmul and read back by finalize, and the index map's transpose read
//! and written); `net_bytes_saved` = unfused minus fused traffic; `bytes_added` = the
//! difference, i.e. what the fused side moves beyond the unfused side's remaining traffic;
//! `time_saved_us` = unfused minus fused roofline time (negative when the fusion costs time).

use gmmfr_passes::fusion::Target;

/// A machine as the roofline model sees it. Every figure is an assumption.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Roofline {
    /// A name for reports.
    pub name: &'static str,
    /// Where the figures come from, in words.
    pub basis: &'static str,
    /// Main-memory bandwidth, bytes per second.
    pub memory_bytes_per_s: f64,
    /// int8 matmul peak, operations (multiply or add) per second (A8W8).
    pub int8_ops_per_s: f64,
    /// bf16/f16 matmul peak, flops per second (non-quantized bf16/f16, and A8W4, whose int4
    /// products the hardware computes in f16, SPEC 1.3).
    pub half_flops_per_s: f64,
    /// f32 matmul peak, flops per second (non-quantized f32).
    pub f32_flops_per_s: f64,
}

/// The Ascend target: an Ascend 910B-class NPU. Assumed: HBM 1.6 TB/s, cube int8 640 TOP/s,
/// bf16/f16 320 TFLOP/s, f32 a quarter of that (80 TFLOP/s).
pub const ASCEND_910B_CLASS: Roofline = Roofline {
    name: "ascend-910b-class",
    basis: "assumed Ascend 910B-class NPU: HBM 1.6 TB/s, int8 640 TOP/s, bf16/f16 320 TFLOP/s, f32 80 TFLOP/s",
    memory_bytes_per_s: 1.6e12,
    int8_ops_per_s: 640e12,
    half_flops_per_s: 320e12,
    f32_flops_per_s: 80e12,
};

/// The loops target: a server CPU. Assumed: DRAM 100 GB/s, int8 4 TOP/s (dot-product
/// instructions on 32 cores), f32 1 TFLOP/s, bf16/f16 computed as f32 (1 TFLOP/s).
pub const CPU_SERVER_CLASS: Roofline = Roofline {
    name: "cpu-server-class",
    basis: "assumed 32-core server CPU: DRAM 100 GB/s, int8 4 TOP/s, bf16/f16 and f32 1 TFLOP/s",
    memory_bytes_per_s: 100e9,
    int8_ops_per_s: 4e12,
    half_flops_per_s: 1e12,
    f32_flops_per_s: 1e12,
};

/// The roofline model of a target.
pub fn for_target(target: Target) -> &'static Roofline {
    match target {
        Target::Ascend => &ASCEND_910B_CLASS,
        Target::Loops => &CPU_SERVER_CLASS,
    }
}

/// Which peak the grouped matmul runs at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compute {
    /// int8 x int8 (A8W8).
    Int8,
    /// bf16/f16 (and A8W4).
    Half,
    /// f32.
    F32,
}

impl Roofline {
    fn peak(&self, compute: Compute) -> f64 {
        match compute {
            Compute::Int8 => self.int8_ops_per_s,
            Compute::Half => self.half_flops_per_s,
            Compute::F32 => self.f32_flops_per_s,
        }
    }

    /// Seconds for a kernel moving `bytes` and computing `flops` at `compute`'s peak.
    fn kernel(&self, bytes: u64, flops: u64, compute: Compute) -> f64 {
        let memory = bytes as f64 / self.memory_bytes_per_s;
        let math = flops as f64 / self.peak(compute);
        memory.max(math)
    }
}

/// The traffic of each kernel on both sides of the rewrite, in bytes (see the module doc).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Traffic {
    /// `2 m k n`.
    pub flops: u64,
    /// The grouped matmul's peak.
    pub compute: Compute,
    /// Every operand of the grouped matmul.
    pub gmm_inputs: u64,
    /// The grouped matmul's (m, n) output (written once, read once by finalize).
    pub gmm_output: u64,
    /// Every operand of finalize except the rows.
    pub finalize_inputs: u64,
    /// Finalize's output.
    pub finalize_output: u64,
    /// The transposed index map of drop_pad_mode 0 (read once and written once), 0 if none.
    pub index_transpose: u64,
    /// Every operand of the fused op.
    pub fused_inputs: u64,
    /// The fused op's f32 output.
    pub fused_output: u64,
    /// The row_index/logit materialization (reads and writes), 0 if not needed.
    pub index_materialization: u64,
    /// The cast of the f32 output back to finalize's type (reads and writes), 0 if f32.
    pub output_cast: u64,
    /// The ND-to-NZ weight cast (reads and writes), 0 if not needed.
    pub weight_cast: u64,
    /// The cumsum-to-counts conversion (reads and writes), 0 if not needed.
    pub group_list_conversion: u64,
}

/// Whether the grouped matmul is limited by memory or by compute on the target.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bound {
    /// bytes / bandwidth >= flops / peak.
    Memory,
    /// flops / peak > bytes / bandwidth.
    Compute,
}

impl Bound {
    /// `memory` or `compute`.
    pub fn as_str(self) -> &'static str {
        match self {
            Bound::Memory => "memory",
            Bound::Compute => "compute",
        }
    }
}

/// What fusing one candidate is worth. `None` throughout when a size it needs is dynamic.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Worth {
    /// Intermediate traffic removed: the (m, n) output written and read back, and the index
    /// map's transpose.
    pub bytes_saved: Option<u64>,
    /// What the fused side moves beyond the unfused side's remaining traffic.
    pub bytes_added: Option<i64>,
    /// Unfused minus fused traffic.
    pub net_bytes_saved: Option<i64>,
    /// `2 m k n`.
    pub flops: Option<u64>,
    /// Roofline time of the unfused kernels, microseconds.
    pub time_unfused_us: Option<f64>,
    /// Roofline time of the fused kernels, microseconds.
    pub time_fused_us: Option<f64>,
    /// Unfused minus fused, microseconds.
    pub time_saved_us: Option<f64>,
    /// The grouped matmul's bound on the target.
    pub gmm_bound: Option<Bound>,
}

/// Applies the model to a candidate's traffic.
pub fn estimate(traffic: Option<&Traffic>, roofline: &Roofline) -> Worth {
    let Some(t) = traffic else {
        return Worth::default();
    };
    let compute = t.compute;
    let unfused_bytes = [
        t.gmm_inputs,
        t.gmm_output,
        t.gmm_output,
        t.finalize_inputs,
        t.finalize_output,
        t.index_transpose,
        t.index_transpose,
    ];
    let fused_bytes = [
        t.fused_inputs,
        t.fused_output,
        t.index_materialization,
        t.output_cast,
        t.weight_cast,
        t.group_list_conversion,
    ];
    let unfused: u64 = unfused_bytes.iter().sum();
    let fused: u64 = fused_bytes.iter().sum();
    let saved = 2 * t.gmm_output + 2 * t.index_transpose;
    let net = unfused as i64 - fused as i64;

    let gmm = roofline.kernel(t.gmm_inputs + t.gmm_output, t.flops, compute);
    let memory = |bytes: u64| roofline.kernel(bytes, 0, compute);
    let time_unfused =
        gmm + memory(t.gmm_output + t.finalize_inputs + t.finalize_output) + memory(2 * t.index_transpose);
    let time_fused = roofline.kernel(t.fused_inputs + t.fused_output, t.flops, compute)
        + memory(t.index_materialization)
        + memory(t.output_cast)
        + memory(t.weight_cast)
        + memory(t.group_list_conversion);
    let memory_time = (t.gmm_inputs + t.gmm_output) as f64 / roofline.memory_bytes_per_s;
    let math_time = t.flops as f64 / roofline.peak(compute);
    let us = |seconds: f64| seconds * 1e6;
    Worth {
        bytes_saved: Some(saved),
        bytes_added: Some(saved as i64 - net),
        net_bytes_saved: Some(net),
        flops: Some(t.flops),
        time_unfused_us: Some(us(time_unfused)),
        time_fused_us: Some(us(time_fused)),
        time_saved_us: Some(us(time_unfused - time_fused)),
        gmm_bound: Some(if math_time > memory_time {
            Bound::Compute
        } else {
            Bound::Memory
        }),
    }
}
