//! Unit tests of the emulator through its C functions, called exactly as generated code calls
//! them. The emulated runtime is process-wide, so every test holds [`serial`]'s lock and checks
//! that no object is left alive.

mod cases;
mod runtime;
mod validation;

use std::ffi::c_void;
use std::path::PathBuf;
use std::ptr::null_mut;
use std::sync::{Mutex, MutexGuard, PoisonError};

use gmmfr_dialect::case::Case;
use gmmfr_dialect::reference::{GmmfrAttrs, GmmfrOperands, grouped_matmul_finalize_routing, nd_to_nz};
use gmmfr_dialect::tensor::{Buffer, DType, Tensor};
use half::bf16;

use crate::abi::{ACL_FORMAT_FRACTAL_NZ, ACL_FORMAT_ND, aclIntArray, aclOpExecutor, aclTensor, data_type_code};
use crate::executor::Entry;
use crate::*;

static SERIAL: Mutex<()> = Mutex::new(());

/// Holds the test lock with a release selected; restores the newer release when dropped.
pub(crate) struct Serial {
    _lock: MutexGuard<'static, ()>,
}

impl Drop for Serial {
    fn drop(&mut self) {
        set_release(Release::Newer);
    }
}

/// Takes the lock, selects `release`, and checks that the previous test left nothing alive.
pub(crate) fn serial(release: Release) -> Serial {
    let lock = SERIAL.lock().unwrap_or_else(PoisonError::into_inner);
    set_release(release);
    assert_eq!(live_objects(), LiveCounts::default(), "a previous test leaked");
    Serial { _lock: lock }
}

pub(crate) fn cases_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/cases")
}

pub(crate) fn load(name: &str) -> Case {
    Case::load(cases_dir().join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// One aclCreateTensor call's arguments.
#[derive(Clone, Debug)]
pub(crate) struct Desc {
    pub(crate) view: Vec<i64>,
    pub(crate) dtype: i32,
    pub(crate) strides: Vec<i64>,
    pub(crate) offset: i64,
    pub(crate) format: i32,
    pub(crate) storage: Vec<i64>,
    pub(crate) data: *mut c_void,
}

pub(crate) fn row_major_strides(dims: &[i64]) -> Vec<i64> {
    let mut strides = vec![1i64; dims.len()];
    for i in (0..dims.len().saturating_sub(1)).rev() {
        strides[i] = strides[i + 1] * dims[i + 1];
    }
    strides
}

fn i64_dims(shape: &[usize]) -> Vec<i64> {
    shape.iter().map(|&d| d as i64).collect()
}

fn data_pointer(t: &Tensor) -> *mut c_void {
    // The emulator only reads inputs; the cast to *mut matches aclCreateTensor's `void *`.
    match t.buffer() {
        Buffer::I8(v) => v.as_ptr() as *mut c_void,
        Buffer::I32(v) => v.as_ptr() as *mut c_void,
        Buffer::I64(v) => v.as_ptr() as *mut c_void,
        Buffer::F16(v) => v.as_ptr() as *mut c_void,
        Buffer::BF16(v) => v.as_ptr() as *mut c_void,
        Buffer::F32(v) => v.as_ptr() as *mut c_void,
    }
}

impl Desc {
    /// A contiguous ND descriptor of a tensor (view = storage = its shape).
    pub(crate) fn nd(t: &Tensor) -> Desc {
        let view = i64_dims(t.shape());
        Desc {
            strides: row_major_strides(&view),
            storage: view.clone(),
            view,
            dtype: data_type_code(t.dtype()),
            offset: 0,
            format: ACL_FORMAT_ND,
            data: data_pointer(t),
        }
    }

    /// An NZ weight: view (e, k, n), storage the tensor's 5-D shape.
    pub(crate) fn nz(t: &Tensor, k: usize, n: usize) -> Desc {
        let e = t.shape().first().copied().unwrap_or(0);
        let view = i64_dims(&[e, k, n]);
        Desc {
            strides: row_major_strides(&view),
            view,
            dtype: data_type_code(t.dtype()),
            offset: 0,
            format: ACL_FORMAT_FRACTAL_NZ,
            storage: i64_dims(t.shape()),
            data: data_pointer(t),
        }
    }

    /// Sets view and storage dims (with contiguous strides).
    pub(crate) fn reshape(&mut self, view: &[i64]) {
        self.view = view.to_vec();
        self.storage = view.to_vec();
        self.strides = row_major_strides(view);
    }

    pub(crate) fn create(&self) -> *mut aclTensor {
        // SAFETY: every array lives in `self` with at least the stated count (tests that break
        // the strides keep one per view dim); the data outlives the tensor in every test.
        unsafe {
            aclCreateTensor(
                self.view.as_ptr(),
                self.view.len() as u64,
                self.dtype,
                self.strides.as_ptr(),
                self.offset,
                self.format,
                self.storage.as_ptr(),
                self.storage.len() as u64,
                self.data,
            )
        }
    }
}

/// Owned operands of one call; the descriptors point into `inputs` and `out_buffer`.
pub(crate) struct Problem {
    pub(crate) entry: Entry,
    pub(crate) x1: Option<Desc>,
    pub(crate) x2: Option<Desc>,
    pub(crate) scale: Option<Desc>,
    pub(crate) bias: Option<Desc>,
    pub(crate) offset: Option<Desc>,
    pub(crate) antiquant_scale: Option<Desc>,
    pub(crate) antiquant_offset: Option<Desc>,
    pub(crate) pertoken_scale: Option<Desc>,
    pub(crate) group_list: Option<Desc>,
    pub(crate) shared_input: Option<Desc>,
    pub(crate) logit: Option<Desc>,
    pub(crate) row_index: Option<Desc>,
    pub(crate) out: Option<Desc>,
    pub(crate) dtype: i64,
    pub(crate) shared_input_weight: f32,
    pub(crate) shared_input_offset: i64,
    pub(crate) transpose_x1: bool,
    pub(crate) transpose_x2: bool,
    pub(crate) group_list_type: i64,
    pub(crate) tuning_config: Option<Vec<i64>>,
    /// Null out-parameters, to test that they are refused.
    pub(crate) null_workspace_size: bool,
    pub(crate) null_executor: bool,
    /// The inputs the descriptors point into (their element buffers never move).
    pub(crate) inputs: Vec<Tensor>,
    /// The output buffer, pre-filled with [`SENTINEL`].
    pub(crate) out_buffer: Vec<f32>,
    /// The attributes, for computing the expected result directly.
    pub(crate) attrs: GmmfrAttrs,
}

/// What `out` holds before a launch; a refused launch must leave it.
pub(crate) const SENTINEL: f32 = -12345.5;

/// The statuses of one full two-phase call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Outcome {
    /// GetWorkspaceSize's status.
    pub(crate) prepare: i32,
    /// The workspace size reported (0 when refused).
    pub(crate) workspace_size: u64,
    /// The launch's status, when GetWorkspaceSize succeeded.
    pub(crate) launch: Option<i32>,
}

impl Problem {
    /// The operands of a case, as the aclnn lowering passes them (WeightNz for A8W8, V3 for
    /// A8W4 with its ND weight).
    pub(crate) fn from_case(case: &Case) -> Problem {
        let mut p = Problem::empty(Entry::WeightNz, case.attrs.clone());
        let m = case.x.shape()[0];
        let k = case.x.shape()[1];
        let n = *case.scale.shape().last().unwrap();
        p.x1 = Some(p.keep(case.x.clone(), Desc::nd));
        if case.w.dtype() == DType::I4 {
            p.entry = Entry::V3;
            p.x2 = Some(p.keep(case.w.clone(), Desc::nd));
        } else {
            p.x2 = Some(p.keep(case.w.clone(), |t| Desc::nz(t, k, n)));
        }
        p.scale = Some(p.keep(case.scale.clone(), Desc::nd));
        p.bias = case.bias.clone().map(|t| p.keep(t, Desc::nd));
        p.offset = case.offset.clone().map(|t| p.keep(t, Desc::nd));
        p.pertoken_scale = case.pertoken_scale.clone().map(|t| p.keep(t, Desc::nd));
        p.group_list = Some(p.keep(case.group_list.clone(), Desc::nd));
        p.shared_input = case.shared_input.clone().map(|t| p.keep(t, Desc::nd));
        p.logit = case.logit.clone().map(|t| p.keep(t, Desc::nd));
        p.row_index = Some(p.keep(case.row_index.clone(), Desc::nd));
        let batch = if case.attrs.output_bs > 0 {
            case.attrs.output_bs as usize
        } else {
            m
        };
        p.set_out(batch, n);
        p
    }

    /// A synthetic A8W8 problem: m rows, all active, counts spread over e groups; shared_input
    /// (bsdp rows at offset 0), logit and pertoken_scale present; deterministic small data.
    pub(crate) fn a8w8(m: usize, k: usize, n: usize, e: usize, batch: usize, bsdp: usize) -> Problem {
        let mut p = Problem::empty(Entry::WeightNz, GmmfrAttrs::default());
        let mut rng = Lcg(0x5eed_0000 ^ (m * 31 + k * 7 + n) as u64);
        let x = Tensor::from_i8(vec![m, k], (0..m * k).map(|_| rng.small_i8(8)).collect()).unwrap();
        let w_nd = Tensor::from_i8(vec![e, k, n], (0..e * k * n).map(|_| rng.small_i8(8)).collect()).unwrap();
        let w = nd_to_nz(&w_nd).unwrap();
        let scale = Tensor::from_f32(vec![e, n], (0..e * n).map(|_| rng.unit() * 0.01).collect()).unwrap();
        let pts = Tensor::from_f32(vec![m], (0..m).map(|_| 0.5 + rng.unit()).collect()).unwrap();
        let logit = Tensor::from_f32(vec![m], (0..m).map(|_| rng.unit()).collect()).unwrap();
        let shared = Tensor::from_bf16(
            vec![bsdp, n],
            (0..bsdp * n).map(|_| bf16::from_f32(rng.unit())).collect(),
        )
        .unwrap();
        let group_list = Tensor::from_i64(vec![e], split_counts(m, e)).unwrap();
        let row_index = Tensor::from_i64(vec![m], (0..m).map(|p| (p % batch) as i64).collect()).unwrap();
        p.x1 = Some(p.keep(x, Desc::nd));
        p.x2 = Some(p.keep(w, |t| Desc::nz(t, k, n)));
        p.scale = Some(p.keep(scale, Desc::nd));
        p.pertoken_scale = Some(p.keep(pts, Desc::nd));
        p.group_list = Some(p.keep(group_list, Desc::nd));
        p.shared_input = Some(p.keep(shared, Desc::nd));
        p.logit = Some(p.keep(logit, Desc::nd));
        p.row_index = Some(p.keep(row_index, Desc::nd));
        p.attrs.output_bs = batch as i64;
        p.set_out(batch, n);
        p
    }

    /// A synthetic A8W4 problem (V3 with an ND int4 weight, or WeightNzV2 with it cast to NZ):
    /// every required optional present, an offset, one shared_input row; all m rows active.
    pub(crate) fn a8w4(m: usize, k: usize, n: usize, e: usize, batch: usize, nz: bool) -> Problem {
        let mut p = Problem::empty(if nz { Entry::WeightNzV2 } else { Entry::V3 }, GmmfrAttrs::default());
        let mut rng = Lcg(0xa8_0004 ^ (m * 31 + k * 7 + n) as u64);
        let x = Tensor::from_i8(vec![m, k], (0..m * k).map(|_| rng.small_i8(100)).collect()).unwrap();
        let w = Tensor::from_i4(vec![e, k, n], (0..e * k * n).map(|_| rng.small_i8(8)).collect()).unwrap();
        let scale_bits = (0..e * n).map(|_| i64::from((rng.unit() * 0.01).to_bits())).collect();
        let scale = Tensor::from_i64(vec![e, 1, n], scale_bits).unwrap();
        let bias = Tensor::from_f32(vec![e, n], (0..e * n).map(|_| rng.unit()).collect()).unwrap();
        let offset = Tensor::from_f32(vec![e, 1, n], (0..e * n).map(|_| rng.unit() * 0.001).collect()).unwrap();
        let pts = Tensor::from_f32(vec![m], (0..m).map(|_| 0.5 + rng.unit()).collect()).unwrap();
        let logit = Tensor::from_f32(vec![m], (0..m).map(|_| rng.unit()).collect()).unwrap();
        let shared = Tensor::from_bf16(vec![1, n], (0..n).map(|_| bf16::from_f32(rng.unit())).collect()).unwrap();
        let group_list = Tensor::from_i64(vec![e], split_counts(m, e)).unwrap();
        let row_index = Tensor::from_i64(vec![m], (0..m).map(|p| (p % batch) as i64).collect()).unwrap();
        p.x1 = Some(p.keep(x, Desc::nd));
        p.x2 = Some(if nz {
            p.keep(nd_to_nz(&w).unwrap(), |t| Desc::nz(t, k, n))
        } else {
            p.keep(w, Desc::nd)
        });
        p.scale = Some(p.keep(scale, Desc::nd));
        p.bias = Some(p.keep(bias, Desc::nd));
        p.offset = Some(p.keep(offset, Desc::nd));
        p.pertoken_scale = Some(p.keep(pts, Desc::nd));
        p.group_list = Some(p.keep(group_list, Desc::nd));
        p.shared_input = Some(p.keep(shared, Desc::nd));
        p.logit = Some(p.keep(logit, Desc::nd));
        p.row_index = Some(p.keep(row_index, Desc::nd));
        p.attrs.output_bs = batch as i64;
        p.set_out(batch, n);
        p
    }

    fn empty(entry: Entry, attrs: GmmfrAttrs) -> Problem {
        Problem {
            entry,
            x1: None,
            x2: None,
            scale: None,
            bias: None,
            offset: None,
            antiquant_scale: None,
            antiquant_offset: None,
            pertoken_scale: None,
            group_list: None,
            shared_input: None,
            logit: None,
            row_index: None,
            out: None,
            dtype: attrs.dtype,
            shared_input_weight: attrs.shared_input_weight,
            shared_input_offset: attrs.shared_input_offset,
            transpose_x1: false,
            transpose_x2: false,
            group_list_type: attrs.group_list_type,
            tuning_config: None,
            null_workspace_size: false,
            null_executor: false,
            inputs: Vec::new(),
            out_buffer: Vec::new(),
            attrs,
        }
    }

    /// Keeps `t` alive in the problem and returns its descriptor.
    pub(crate) fn keep(&mut self, t: Tensor, desc: impl Fn(&Tensor) -> Desc) -> Desc {
        let d = desc(&t);
        self.inputs.push(t);
        d
    }

    /// A fresh (batch, n) f32 output filled with [`SENTINEL`].
    pub(crate) fn set_out(&mut self, batch: usize, n: usize) {
        self.out_buffer = vec![SENTINEL; batch * n];
        let view = i64_dims(&[batch, n]);
        self.out = Some(Desc {
            strides: row_major_strides(&view),
            storage: view.clone(),
            view,
            dtype: ACL_FLOAT,
            offset: 0,
            format: ACL_FORMAT_ND,
            data: self.out_buffer.as_mut_ptr().cast(),
        });
    }

    /// The output buffer as a tensor of the out descriptor's shape.
    pub(crate) fn output(&self) -> Tensor {
        let d = self.out.as_ref().unwrap();
        Tensor::from_f32(vec![d.view[0] as usize, d.view[1] as usize], self.out_buffer.clone()).unwrap()
    }

    /// True when the output still holds the sentinel everywhere.
    pub(crate) fn untouched(&self) -> bool {
        self.out_buffer.iter().all(|&v| v == SENTINEL)
    }

    /// The reference result on the same data (each descriptor's data pointer identifies its
    /// tensor among `inputs`).
    pub(crate) fn expected(&self) -> Tensor {
        let find = |d: &Option<Desc>| -> Option<&Tensor> {
            let d = d.as_ref()?;
            self.inputs.iter().find(|t| data_pointer(t) == d.data)
        };
        let ops = GmmfrOperands {
            x: find(&self.x1).unwrap(),
            w: find(&self.x2).unwrap(),
            group_list: find(&self.group_list).unwrap(),
            scale: find(&self.scale),
            bias: find(&self.bias),
            offset: find(&self.offset),
            pertoken_scale: find(&self.pertoken_scale),
            shared_input: find(&self.shared_input),
            logit: find(&self.logit),
            row_index: find(&self.row_index).unwrap(),
        };
        let mut attrs = self.attrs.clone();
        attrs.shared_input_weight = self.shared_input_weight;
        attrs.shared_input_offset = self.shared_input_offset;
        attrs.group_list_type = self.group_list_type;
        grouped_matmul_finalize_routing(&ops, &attrs).unwrap()
    }

    /// The full two-phase sequence of SPEC 4.1: create every tensor (and the tuning config),
    /// GetWorkspaceSize, aclrtMalloc when the size is non-zero, launch, synchronize, then
    /// destroy and free everything. Asserts that nothing is left alive.
    pub(crate) fn run(&mut self) -> Outcome {
        let slots = [
            &self.x1,
            &self.x2,
            &self.scale,
            &self.bias,
            &self.offset,
            &self.antiquant_scale,
            &self.antiquant_offset,
            &self.pertoken_scale,
            &self.group_list,
            &self.shared_input,
            &self.logit,
            &self.row_index,
            &self.out,
        ];
        let handles: Vec<*mut aclTensor> = slots
            .iter()
            .map(|d| match d {
                Some(d) => {
                    let t = d.create();
                    assert!(!t.is_null(), "aclCreateTensor refused {d:?}: {:?}", last_error());
                    t
                }
                None => null_mut(),
            })
            .collect();
        let tuning: *mut aclIntArray = match &self.tuning_config {
            // SAFETY: the vector holds `len` values.
            Some(v) => unsafe { aclCreateIntArray(v.as_ptr(), v.len() as u64) },
            None => null_mut(),
        };
        let mut workspace_size = 0u64;
        let mut executor: *mut aclOpExecutor = null_mut();
        let ws_ptr: *mut u64 = if self.null_workspace_size {
            null_mut()
        } else {
            &mut workspace_size
        };
        let ex_ptr: *mut *mut aclOpExecutor = if self.null_executor { null_mut() } else { &mut executor };
        let h = |i: usize| handles[i].cast_const();
        let out = handles[12];
        let (t1, t2) = (u8::from(self.transpose_x1), u8::from(self.transpose_x2));
        // SAFETY: handles come from aclCreateTensor (or are null), out-parameters are locals.
        let prepare = unsafe {
            match self.entry {
                Entry::WeightNz => aclnnGroupedMatmulFinalizeRoutingWeightNzGetWorkspaceSize(
                    h(0),
                    h(1),
                    h(2),
                    h(3),
                    h(7),
                    h(8),
                    h(9),
                    h(10),
                    h(11),
                    self.dtype,
                    self.shared_input_weight,
                    self.shared_input_offset,
                    t1,
                    t2,
                    self.group_list_type,
                    out,
                    ws_ptr,
                    ex_ptr,
                ),
                Entry::WeightNzV2 => aclnnGroupedMatmulFinalizeRoutingWeightNzV2GetWorkspaceSize(
                    h(0),
                    h(1),
                    h(2),
                    h(3),
                    h(4),
                    h(5),
                    h(6),
                    h(7),
                    h(8),
                    h(9),
                    h(10),
                    h(11),
                    self.dtype,
                    self.shared_input_weight,
                    self.shared_input_offset,
                    t1,
                    t2,
                    self.group_list_type,
                    tuning,
                    out,
                    ws_ptr,
                    ex_ptr,
                ),
                Entry::V3 => aclnnGroupedMatmulFinalizeRoutingV3GetWorkspaceSize(
                    h(0),
                    h(1),
                    h(2),
                    h(3),
                    h(4),
                    h(5),
                    h(6),
                    h(7),
                    h(8),
                    h(9),
                    h(10),
                    h(11),
                    self.dtype,
                    self.shared_input_weight,
                    self.shared_input_offset,
                    t1,
                    t2,
                    self.group_list_type,
                    tuning,
                    out,
                    ws_ptr,
                    ex_ptr,
                ),
            }
        };
        let mut launch = None;
        if prepare == ACLNN_SUCCESS {
            assert!(workspace_size > 0 && !executor.is_null());
            let mut workspace: *mut c_void = null_mut();
            // SAFETY: `workspace` is a local out-parameter.
            let malloc = unsafe { aclrtMalloc(&mut workspace, workspace_size as usize, ACL_MEM_MALLOC_HUGE_FIRST) };
            assert_eq!(malloc, 0);
            let stream: aclrtStream = null_mut();
            // SAFETY: a fresh executor and a live workspace of the reported size.
            let status = unsafe {
                match self.entry {
                    Entry::WeightNz => {
                        aclnnGroupedMatmulFinalizeRoutingWeightNz(workspace, workspace_size, executor, stream)
                    }
                    Entry::WeightNzV2 => {
                        aclnnGroupedMatmulFinalizeRoutingWeightNzV2(workspace, workspace_size, executor, stream)
                    }
                    Entry::V3 => aclnnGroupedMatmulFinalizeRoutingV3(workspace, workspace_size, executor, stream),
                }
            };
            launch = Some(status);
            // SAFETY: no pointer is dereferenced.
            assert_eq!(unsafe { aclrtSynchronizeStream(stream) }, 0);
            // SAFETY: allocated above.
            assert_eq!(unsafe { aclrtFree(workspace) }, 0);
        } else {
            assert_eq!(
                (workspace_size, executor),
                (0, null_mut()),
                "a refused call wrote its out-parameters"
            );
        }
        for t in handles {
            // SAFETY: created above (or null, a no-op).
            assert_eq!(unsafe { aclDestroyTensor(t) }, 0);
        }
        // SAFETY: created above (or null).
        assert_eq!(unsafe { aclDestroyIntArray(tuning) }, 0);
        assert_eq!(live_objects(), LiveCounts::default(), "leak after {:?}", self.entry);
        Outcome {
            prepare,
            workspace_size,
            launch,
        }
    }
}

/// Splits m rows into e counts as evenly as possible.
pub(crate) fn split_counts(m: usize, e: usize) -> Vec<i64> {
    (0..e).map(|g| (m / e + usize::from(g < m % e)) as i64).collect()
}

/// A small deterministic generator for test data.
pub(crate) struct Lcg(pub(crate) u64);

impl Lcg {
    pub(crate) fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }

    /// A value in [-range, range).
    pub(crate) fn small_i8(&mut self, range: i64) -> i8 {
        ((self.next() as i64 % (2 * range)) - range) as i8
    }

    /// A value in [0, 1).
    pub(crate) fn unit(&mut self) -> f32 {
        (self.next() % 1024) as f32 / 1024.0
    }
}
