//! The C header `include/gmmfr_aclnn.h` checked by a C compiler (clang-22), and the emulator
//! driven by a C caller through the header's own function types.
//!
//! `tests/c/two_phase.c` performs the full two-phase sequence of SPEC 4.1. It is compiled with
//! `clang-22 -std=c11 -Wall -Wextra -Werror -c` (calls by name: every declaration is checked),
//! and once more as a shared library whose calls go through pointers typed by the header's
//! declarations, filled from `symbols()`. Running public cases through that library checks that
//! the Rust functions receive what a C caller of the header passes (the f32 and bool parameters
//! in the middle of the GetWorkspaceSize lists included). Skipped, with a message, when clang-22
//! is not installed (setup.sh installs it).

use std::ffi::{CString, c_char, c_int, c_void};
use std::path::{Path, PathBuf};
use std::process::Command;

use gmmfr_aclnn_emu::{
    ACL_FORMAT_FRACTAL_NZ, ACL_FORMAT_ND, ACLNN_ERR_PARAM_INVALID, GMMFR_EMU_ERR_RUNTIME_PRECONDITION, LiveCounts,
    data_type_code, last_error, live_objects, symbols,
};
use gmmfr_dialect::case::Case;
use gmmfr_dialect::reference::compare;
use gmmfr_dialect::tensor::{Buffer, DType, Tensor};

const CLANG: &str = "clang-22";
const FLAGS: [&str; 4] = ["-std=c11", "-Wall", "-Wextra", "-Werror"];

fn manifest() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn include_dir() -> PathBuf {
    manifest().join("../include")
}

fn caller_source() -> PathBuf {
    manifest().join("tests/c/two_phase.c")
}

fn out_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("aclnn-emu-c-abi");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// True when clang-22 runs; otherwise prints why the test is skipped.
fn clang_available(test: &str) -> bool {
    let ok = Command::new(CLANG)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        eprintln!("SKIPPED {test}: {CLANG} not found on PATH (./setup.sh installs it)");
    }
    ok
}

/// Runs clang-22 with `args` and fails the test with its diagnostics on error.
fn clang(args: &[&str]) {
    let output = Command::new(CLANG).args(args).output().unwrap();
    assert!(
        output.status.success(),
        "{CLANG} {}\n{}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
}

fn path_str(p: &Path) -> &str {
    p.to_str().unwrap()
}

// The C caller compiles against the header with -std=c11 -Wall -Wextra -Werror -c (calling every
// function by name), and the header also compiles as C++ (its extern "C" guard).
#[test]
fn header_compiles_with_a_c_caller() {
    if !clang_available("header_compiles_with_a_c_caller") {
        return;
    }
    let object = out_dir().join("two_phase.o");
    let include = format!("-I{}", path_str(&include_dir()));
    let source = caller_source();
    let mut args: Vec<&str> = FLAGS.to_vec();
    args.extend([include.as_str(), "-c", path_str(&source), "-o", path_str(&object)]);
    clang(&args);
    assert!(object.is_file());
    let header = include_dir().join("gmmfr_aclnn.h");
    clang(&[
        "-x",
        "c++",
        "-std=c++17",
        "-Wall",
        "-Wextra",
        "-Werror",
        "-fsyntax-only",
        path_str(&header),
    ]);
}

/// Mirror of `gmmfr_operand` in two_phase.c.
#[repr(C)]
#[derive(Clone, Copy)]
struct COperand {
    data: *mut c_void,
    dtype: i32,
    format: i32,
    rank: u64,
    view: [i64; 5],
    storage_rank: u64,
    storage: [i64; 5],
}

/// Mirror of `gmmfr_call` in two_phase.c (its size is checked against the C one).
#[repr(C)]
struct CCall {
    entry: i32,
    operands: [COperand; 11],
    dtype: i64,
    shared_input_weight: f32,
    shared_input_offset: i64,
    group_list_type: i64,
    tuning: *const i64,
    tuning_len: u64,
}

const ABSENT: COperand = COperand {
    data: std::ptr::null_mut(),
    dtype: 0,
    format: 0,
    rank: 0,
    view: [0; 5],
    storage_rank: 0,
    storage: [0; 5],
};

fn dims5(shape: &[usize]) -> [i64; 5] {
    let mut d = [0i64; 5];
    for (slot, &v) in d.iter_mut().zip(shape) {
        *slot = v as i64;
    }
    d
}

fn data(t: &Tensor) -> *mut c_void {
    match t.buffer() {
        Buffer::I8(v) => v.as_ptr() as *mut c_void,
        Buffer::I32(v) => v.as_ptr() as *mut c_void,
        Buffer::I64(v) => v.as_ptr() as *mut c_void,
        Buffer::F16(v) => v.as_ptr() as *mut c_void,
        Buffer::BF16(v) => v.as_ptr() as *mut c_void,
        Buffer::F32(v) => v.as_ptr() as *mut c_void,
    }
}

fn nd(t: &Tensor) -> COperand {
    COperand {
        data: data(t),
        dtype: data_type_code(t.dtype()),
        format: ACL_FORMAT_ND,
        rank: t.rank() as u64,
        view: dims5(t.shape()),
        storage_rank: t.rank() as u64,
        storage: dims5(t.shape()),
    }
}

fn optional(t: &Option<Tensor>) -> COperand {
    t.as_ref().map_or(ABSENT, nd)
}

type SetApi = unsafe extern "C" fn(*const *const c_char, *const *mut (), u64) -> c_int;
type Count = unsafe extern "C" fn() -> u64;
type CallSize = unsafe extern "C" fn() -> usize;
type Run = unsafe extern "C" fn(*const CCall, *mut u64) -> i32;

unsafe extern "C" {
    fn dlopen(filename: *const c_char, flags: c_int) -> *mut c_void;
    fn dlsym(handle: *mut c_void, symbol: *const c_char) -> *mut c_void;
    fn dlclose(handle: *mut c_void) -> c_int;
}

const RTLD_NOW: c_int = 2;

/// The C caller built as a shared library with its calls routed through `symbols()`.
struct Caller {
    handle: *mut c_void,
    run: Run,
}

impl Caller {
    fn build_and_load() -> Caller {
        let library = out_dir().join("libtwo_phase.so");
        let include = format!("-I{}", path_str(&include_dir()));
        let source = caller_source();
        let mut args: Vec<&str> = FLAGS.to_vec();
        args.extend([
            include.as_str(),
            "-DGMMFR_VIA_TABLE",
            "-shared",
            "-fPIC",
            path_str(&source),
            "-o",
            path_str(&library),
        ]);
        clang(&args);
        let path = CString::new(path_str(&library)).unwrap();
        // SAFETY: a NUL-terminated path; the library has no constructors.
        let handle = unsafe { dlopen(path.as_ptr(), RTLD_NOW) };
        assert!(!handle.is_null(), "dlopen {library:?} failed");
        let symbol = |name: &str| {
            let name = CString::new(name).unwrap();
            // SAFETY: a live handle and a NUL-terminated name.
            let p = unsafe { dlsym(handle, name.as_ptr()) };
            assert!(!p.is_null(), "{name:?} missing");
            p
        };
        // SAFETY: each symbol is the C function of two_phase.c with exactly this signature.
        let (set_api, count, call_size, run) = unsafe {
            (
                std::mem::transmute::<*mut c_void, SetApi>(symbol("gmmfr_test_set_api")),
                std::mem::transmute::<*mut c_void, Count>(symbol("gmmfr_test_api_count")),
                std::mem::transmute::<*mut c_void, CallSize>(symbol("gmmfr_test_call_size")),
                std::mem::transmute::<*mut c_void, Run>(symbol("gmmfr_test_run")),
            )
        };
        // SAFETY: no arguments.
        assert_eq!(
            unsafe { call_size() },
            std::mem::size_of::<CCall>(),
            "gmmfr_call layout"
        );
        let table = symbols();
        let names: Vec<CString> = table.iter().map(|(n, _)| CString::new(*n).unwrap()).collect();
        let name_ptrs: Vec<*const c_char> = names.iter().map(|n| n.as_ptr()).collect();
        let addresses: Vec<*mut ()> = table.iter().map(|(_, a)| *a).collect();
        // SAFETY: parallel arrays of `table.len()` entries that outlive the call.
        let found = unsafe { set_api(name_ptrs.as_ptr(), addresses.as_ptr(), table.len() as u64) };
        // SAFETY: no arguments.
        let expected = unsafe { count() };
        assert_eq!(
            (found as u64, expected),
            (13, 13),
            "every header function bound from symbols()"
        );
        Caller { handle, run }
    }

    fn call(&self, call: &CCall) -> (i32, u64) {
        let mut workspace_size = 0u64;
        // SAFETY: `call` points at live buffers of the sizes its dims describe.
        let status = unsafe { (self.run)(call, &mut workspace_size) };
        (status, workspace_size)
    }
}

impl Drop for Caller {
    fn drop(&mut self) {
        // SAFETY: loaded in build_and_load and no longer called.
        unsafe { dlclose(self.handle) };
    }
}

/// The C call for a case: WeightNz (or `entry`) for A8W8 with its NZ weight, V3 for A8W4.
fn case_call(case: &Case, entry: i32, out: &mut [f32], tuning: Option<&[i64]>) -> CCall {
    let (m, k) = (case.x.shape()[0], case.x.shape()[1]);
    let n = *case.scale.shape().last().unwrap();
    let batch = if case.attrs.output_bs > 0 {
        case.attrs.output_bs as usize
    } else {
        m
    };
    assert_eq!(out.len(), batch * n);
    let weight = if case.w.dtype() == DType::I4 {
        nd(&case.w)
    } else {
        COperand {
            format: ACL_FORMAT_FRACTAL_NZ,
            rank: 3,
            view: dims5(&[case.w.shape()[0], k, n]),
            ..nd(&case.w)
        }
    };
    let out_operand = COperand {
        data: out.as_mut_ptr().cast(),
        dtype: 0,
        format: ACL_FORMAT_ND,
        rank: 2,
        view: dims5(&[batch, n]),
        storage_rank: 2,
        storage: dims5(&[batch, n]),
    };
    CCall {
        entry,
        operands: [
            nd(&case.x),
            weight,
            nd(&case.scale),
            optional(&case.bias),
            optional(&case.offset),
            optional(&case.pertoken_scale),
            nd(&case.group_list),
            optional(&case.shared_input),
            optional(&case.logit),
            nd(&case.row_index),
            out_operand,
        ],
        dtype: case.attrs.dtype,
        shared_input_weight: case.attrs.shared_input_weight,
        shared_input_offset: case.attrs.shared_input_offset,
        group_list_type: case.attrs.group_list_type,
        tuning: tuning.map_or(std::ptr::null(), <[i64]>::as_ptr),
        tuning_len: tuning.map_or(0, |t| t.len() as u64),
    }
}

const SENTINEL: f32 = -7.25;

// Public cases run through the C caller, via the header's function types bound from symbols():
// valid cases match expected.npy (WeightNz, WeightNzV2 with a tuning config, V3), an invalid
// case fails at launch with 561002 writing nothing, the loops-only case fails GetWorkspaceSize
// with 161002; nothing is left alive.
#[test]
fn c_caller_runs_cases_through_the_header_abi() {
    if !clang_available("c_caller_runs_cases_through_the_header_abi") {
        return;
    }
    let caller = Caller::build_and_load();
    let cases = manifest().join("../../shared/cases");
    let tuning = [8i64, 8];
    for (name, entry, tuning) in [
        ("a8w8_doc_small", 0, None),
        ("a8w8_doc_small", 1, Some(&tuning[..])),
        ("a8w8_cumsum", 0, None),
        ("a8w8_ep_garbage", 0, None),
        ("a8w8_noshared_nopts", 0, None),
        ("a8w4_offset", 2, None),
    ] {
        let case = Case::load(cases.join(name)).unwrap();
        let expected = case.expected.as_ref().unwrap();
        let mut out = vec![SENTINEL; expected.num_elements()];
        let call = case_call(&case, entry, &mut out, tuning);
        let (status, workspace_size) = caller.call(&call);
        assert_eq!(status, 0, "{name} (entry {entry}): {:?}", last_error());
        let m = case.x.shape()[0] as u64;
        assert_eq!(workspace_size, 4 * m * expected.shape()[1] as u64);
        let actual = Tensor::from_f32(expected.shape().to_vec(), out).unwrap();
        let c = compare(&actual, expected).unwrap();
        assert!(c.within(1e-5), "{name} (entry {entry}): {c:?}");
        assert_eq!(live_objects(), LiveCounts::default(), "{name}: leak");
    }

    let case = Case::load(cases.join("bad_rowidx_oob")).unwrap();
    let mut out = vec![SENTINEL; 8 * 256];
    let (status, _) = caller.call(&case_call(&case, 0, &mut out, None));
    assert_eq!(status, GMMFR_EMU_ERR_RUNTIME_PRECONDITION);
    assert!(out.iter().all(|&v| v == SENTINEL), "a refused launch wrote its output");

    let case = Case::load(cases.join("a8w8_loops_only")).unwrap();
    let mut out = vec![SENTINEL; 10 * 96];
    let (status, _) = caller.call(&case_call(&case, 0, &mut out, None));
    assert_eq!(status, ACLNN_ERR_PARAM_INVALID);
    assert_eq!(live_objects(), LiveCounts::default());
}
