//! Descriptors, device memory, the launch's own checks and runtime preconditions.

use std::collections::BTreeSet;
use std::ptr::null;

use super::*;
use crate::abi::ACL_INT4;

fn doc() -> Problem {
    Problem::from_case(&load("a8w8_doc_small"))
}

/// A WeightNz call prepared by hand (for launch misuse): its tensors and executor.
struct Prepared {
    tensors: Vec<*mut aclTensor>,
    executor: *mut aclOpExecutor,
    size: u64,
}

impl Prepared {
    fn new(p: &Problem) -> Prepared {
        let slots = [
            &p.x1,
            &p.x2,
            &p.scale,
            &p.pertoken_scale,
            &p.group_list,
            &p.shared_input,
            &p.logit,
            &p.row_index,
            &p.out,
        ];
        let tensors: Vec<*mut aclTensor> = slots.iter().map(|d| d.as_ref().unwrap().create()).collect();
        let t = |i: usize| tensors[i].cast_const();
        let mut size = 0u64;
        let mut executor = null_mut();
        // SAFETY: live handles; locals as out-parameters.
        let status = unsafe {
            aclnnGroupedMatmulFinalizeRoutingWeightNzGetWorkspaceSize(
                t(0),
                t(1),
                t(2),
                std::ptr::null(),
                t(3),
                t(4),
                t(5),
                t(6),
                t(7),
                p.dtype,
                p.shared_input_weight,
                p.shared_input_offset,
                0,
                0,
                p.group_list_type,
                tensors[8],
                &mut size,
                &mut executor,
            )
        };
        assert_eq!(status, 0, "{:?}", last_error());
        Prepared {
            tensors,
            executor,
            size,
        }
    }

    fn launch(&self, workspace: *mut c_void, size: u64) -> i32 {
        // SAFETY: the executor and workspace are only looked up / range-checked before use.
        unsafe { aclnnGroupedMatmulFinalizeRoutingWeightNz(workspace, size, self.executor, null_mut()) }
    }

    fn finish(self) {
        for t in self.tensors {
            // SAFETY: created in `new`.
            assert_eq!(unsafe { aclDestroyTensor(t) }, 0);
        }
    }
}

fn malloc(size: usize) -> *mut c_void {
    let mut ptr = null_mut();
    // SAFETY: a local out-parameter.
    assert_eq!(unsafe { aclrtMalloc(&mut ptr, size, ACL_MEM_MALLOC_HUGE_FIRST) }, 0);
    ptr
}

fn free(ptr: *mut c_void) -> i32 {
    // SAFETY: only looked up before release.
    unsafe { aclrtFree(ptr) }
}

// aclCreateTensor returns null for null arrays with non-zero counts, more than 8 dims, negative
// dims or offset; a rank-0 tensor with null arrays is fine. Nothing leaks.
#[test]
fn create_tensor_checks_its_arguments() {
    let _s = serial(Release::Newer);
    let dims = [2i64, 3];
    let strides = [3i64, 1];
    let nine = [1i64; 9];
    let negative = [2i64, -3];
    let mut data = [0f32; 6];
    let d = data.as_mut_ptr().cast::<c_void>();
    // SAFETY: every non-null array has at least the stated count.
    unsafe {
        assert!(aclCreateTensor(null(), 2, 0, strides.as_ptr(), 0, 2, dims.as_ptr(), 2, d).is_null());
        assert!(last_error().unwrap().contains("viewDims is null with 2 entries"));
        assert!(aclCreateTensor(dims.as_ptr(), 2, 0, null(), 0, 2, dims.as_ptr(), 2, d).is_null());
        assert!(aclCreateTensor(dims.as_ptr(), 2, 0, strides.as_ptr(), 0, 2, null(), 2, d).is_null());
        assert!(aclCreateTensor(nine.as_ptr(), 9, 0, nine.as_ptr(), 0, 2, dims.as_ptr(), 2, d).is_null());
        assert!(last_error().unwrap().contains("9 entries, at most 8"));
        assert!(aclCreateTensor(negative.as_ptr(), 2, 0, strides.as_ptr(), 0, 2, dims.as_ptr(), 2, d).is_null());
        assert!(aclCreateTensor(dims.as_ptr(), 2, 0, strides.as_ptr(), -1, 2, dims.as_ptr(), 2, d).is_null());
        assert!(last_error().unwrap().contains("negative offset -1"));
        assert_eq!(live_objects().tensors, 0);
        let scalar = aclCreateTensor(null(), 0, 0, null(), 0, 2, null(), 0, d);
        assert!(!scalar.is_null());
        assert_eq!(aclDestroyTensor(scalar), 0);
    }
    assert_eq!(live_objects(), LiveCounts::default());
}

// Destroying null is a no-op; destroying twice or a foreign handle is 161002 (never UB).
#[test]
fn destroy_is_checked() {
    let _s = serial(Release::Newer);
    let dims = [4i64];
    let values = [1i64, 2, 3];
    let mut data = [0f32; 4];
    // SAFETY: arrays hold the stated counts; handles are only looked up.
    unsafe {
        let t = aclCreateTensor(
            dims.as_ptr(),
            1,
            0,
            dims.as_ptr(),
            0,
            2,
            dims.as_ptr(),
            1,
            data.as_mut_ptr().cast(),
        );
        assert_eq!(live_objects().tensors, 1);
        assert_eq!(aclDestroyTensor(t), 0);
        assert_eq!(aclDestroyTensor(t), ACLNN_ERR_PARAM_INVALID);
        assert_eq!(aclDestroyTensor(null()), 0);
        assert_eq!(
            aclDestroyTensor(std::ptr::without_provenance(0x10)),
            ACLNN_ERR_PARAM_INVALID
        );

        assert!(aclCreateIntArray(null(), 2).is_null());
        assert!(aclCreateIntArray(values.as_ptr(), MAX_INT_ARRAY_LEN + 1).is_null());
        let empty = aclCreateIntArray(null(), 0);
        let a = aclCreateIntArray(values.as_ptr(), 3);
        assert!(!empty.is_null() && !a.is_null());
        assert_eq!(live_objects().int_arrays, 2);
        assert_eq!(aclDestroyIntArray(a), 0);
        assert_eq!(aclDestroyIntArray(a), ACLNN_ERR_PARAM_INVALID);
        assert_eq!(aclDestroyIntArray(empty), 0);
        assert_eq!(aclDestroyIntArray(null()), 0);
    }
    assert_eq!(live_objects(), LiveCounts::default());
}

// aclrtMalloc validates its arguments and returns zeroed, 64-byte-aligned memory; aclrtFree
// refuses null, foreign, interior and already freed pointers with error codes.
#[test]
fn device_memory_is_tracked() {
    let _s = serial(Release::Newer);
    let mut ptr: *mut c_void = null_mut();
    // SAFETY: a local out-parameter (or null, refused).
    unsafe {
        assert_eq!(aclrtMalloc(null_mut(), 16, 0), ACL_ERROR_INVALID_PARAM);
        assert_eq!(aclrtMalloc(&mut ptr, 0, 0), ACL_ERROR_INVALID_PARAM);
        assert_eq!(aclrtMalloc(&mut ptr, 16, 7), ACL_ERROR_INVALID_PARAM);
        assert_eq!(aclrtMalloc(&mut ptr, usize::MAX, 0), ACL_ERROR_RT_MEMORY_ALLOCATION);
    }
    assert!(ptr.is_null());
    let ptr = malloc(100);
    assert_eq!(ptr.addr() % DEVICE_ALIGNMENT, 0);
    // SAFETY: 100 bytes were just allocated.
    let bytes = unsafe { std::slice::from_raw_parts(ptr.cast::<u8>(), 100) };
    assert!(bytes.iter().all(|&b| b == 0));
    assert_eq!(live_objects().allocations, 1);
    let mut local = 0u64;
    assert_eq!(
        free(ptr.cast::<u8>().wrapping_add(1).cast()),
        ACL_ERROR_RT_PARAM_INVALID
    );
    assert_eq!(free((&raw mut local).cast()), ACL_ERROR_RT_PARAM_INVALID);
    assert_eq!(free(null_mut()), ACL_ERROR_INVALID_PARAM);
    assert_eq!(free(ptr), 0);
    assert_eq!(free(ptr), ACL_ERROR_RT_PARAM_INVALID);
    // SAFETY: streams are not dereferenced.
    unsafe {
        assert_eq!(aclrtSynchronizeStream(null_mut()), 0);
        assert_eq!(aclrtSynchronizeStream((&raw mut local).cast()), 0);
    }
    assert_eq!(live_objects(), LiveCounts::default());
}

// The launch refuses a null executor (161001), a reused one, one of another entry point, a
// too-small workspaceSize, a null workspace and a workspace outside aclrtMalloc memory (161002);
// every refusal consumes the executor and writes nothing.
#[test]
fn launch_checks_executor_and_workspace() {
    let _s = serial(Release::Newer);
    let p = doc();
    // SAFETY: null executor, only checked.
    assert_eq!(
        unsafe { aclnnGroupedMatmulFinalizeRoutingWeightNz(null_mut(), 0, null_mut(), null_mut()) },
        ACLNN_ERR_PARAM_NULLPTR
    );

    let call = Prepared::new(&p);
    assert_eq!(call.size, 4 * 64 * 256);
    let ws = malloc(call.size as usize);
    assert_eq!(call.launch(ws, call.size - 1), ACLNN_ERR_PARAM_INVALID);
    assert!(
        last_error()
            .unwrap()
            .contains("workspaceSize must be >= 65536, is 65535")
    );
    assert_eq!(
        live_objects().executors,
        0,
        "a refused launch must release its executor"
    );
    assert_eq!(call.launch(ws, call.size), ACLNN_ERR_PARAM_INVALID, "reused executor");
    assert!(last_error().unwrap().contains("unknown or already used"));
    call.finish();

    let call = Prepared::new(&p);
    assert_eq!(call.launch(null_mut(), call.size), ACLNN_ERR_PARAM_INVALID);
    assert!(last_error().unwrap().contains("workspace must be non-null"));
    call.finish();

    let call = Prepared::new(&p);
    let mut host = vec![0u8; call.size as usize];
    assert_eq!(
        call.launch(host.as_mut_ptr().cast(), call.size),
        ACLNN_ERR_PARAM_INVALID
    );
    assert!(last_error().unwrap().contains("inside a live aclrtMalloc allocation"));
    call.finish();

    let call = Prepared::new(&p);
    let small = malloc(call.size as usize / 2);
    assert_eq!(
        call.launch(small, call.size),
        ACLNN_ERR_PARAM_INVALID,
        "allocation smaller than claimed"
    );
    assert_eq!(free(small), 0);
    call.finish();

    let call = Prepared::new(&p);
    // SAFETY: the executor is only looked up.
    let status = unsafe { aclnnGroupedMatmulFinalizeRoutingV3(ws, call.size, call.executor, null_mut()) };
    assert_eq!(status, ACLNN_ERR_PARAM_INVALID);
    assert!(
        last_error()
            .unwrap()
            .contains("one prepared by aclnnGroupedMatmulFinalizeRoutingWeightNzGetWorkspaceSize")
    );
    call.finish();
    assert!(p.untouched());

    // A workspace inside a larger allocation (at an offset) is fine.
    let call = Prepared::new(&p);
    let big = malloc(call.size as usize + 128);
    assert_eq!(call.launch(big.cast::<u8>().wrapping_add(128).cast(), call.size), 0);
    assert_eq!(free(big), 0);
    call.finish();
    assert!(!p.untouched());
    assert_eq!(free(ws), 0);
    assert_eq!(live_objects(), LiveCounts::default());
}

// Runtime preconditions the kernel does not check (negative count, decreasing cumsum, int4 byte
// outside [-8, 7], high bits in an A8W4 scale) fail the launch with 561002 and write nothing.
#[test]
fn runtime_preconditions_write_nothing() {
    let _s = serial(Release::Newer);
    let mut p = doc();
    let gl = Tensor::from_i64(vec![8], vec![-1, 9, 8, 8, 8, 8, 8, 8]).unwrap();
    p.group_list = Some(p.keep(gl, Desc::nd));
    let outcome = p.run();
    assert_eq!(outcome.launch, Some(GMMFR_EMU_ERR_RUNTIME_PRECONDITION));
    assert!(
        last_error()
            .unwrap()
            .contains("group_list[0] = -1 is a negative row count")
    );
    assert!(p.untouched());

    let mut p = doc();
    let gl = Tensor::from_i64(vec![8], vec![8, 4, 16, 24, 32, 40, 48, 56]).unwrap();
    p.group_list = Some(p.keep(gl, Desc::nd));
    p.group_list_type = 0;
    assert_eq!(p.run().launch, Some(GMMFR_EMU_ERR_RUNTIME_PRECONDITION));
    assert!(p.untouched());

    let a8w4 = load("a8w4_offset");
    let mut p = Problem::from_case(&a8w4);
    let mut w = a8w4.w.as_i8().unwrap().to_vec();
    w[5] = 8;
    let bad = Tensor::from_i8(a8w4.w.shape().to_vec(), w).unwrap();
    p.x2 = Some(p.keep(bad, Desc::nd));
    p.x2.as_mut().unwrap().dtype = ACL_INT4;
    assert_eq!(p.run().launch, Some(GMMFR_EMU_ERR_RUNTIME_PRECONDITION));
    assert!(
        last_error().unwrap().contains("i4 element 5 is 8"),
        "{:?}",
        last_error()
    );
    assert!(p.untouched());

    let mut p = Problem::from_case(&a8w4);
    let mut scale = a8w4.scale.as_i64().unwrap().to_vec();
    scale[3] |= 1 << 40;
    let bad = Tensor::from_i64(a8w4.scale.shape().to_vec(), scale).unwrap();
    p.scale = Some(p.keep(bad, Desc::nd));
    assert_eq!(p.run().launch, Some(GMMFR_EMU_ERR_RUNTIME_PRECONDITION));
    assert!(last_error().unwrap().contains("high 32 bits"));
    assert!(p.untouched());
}

// symbols() lists exactly the functions the header declares, each once, with distinct addresses.
#[test]
fn symbols_match_the_header() {
    let header =
        std::fs::read_to_string(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../include/gmmfr_aclnn.h")).unwrap();
    let mut code = String::new();
    let mut rest = header.as_str();
    while let Some(start) = rest.find("/*") {
        code.push_str(&rest[..start]);
        rest = rest[start..].find("*/").map_or("", |end| &rest[start + end + 2..]);
    }
    code.push_str(rest);
    // The identifier right before each '(' that starts with "acl" is a declared function.
    let declared: BTreeSet<String> = code
        .split('(')
        .filter_map(|before| {
            let start = before
                .rfind(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .map_or(0, |i| i + 1);
            let name = &before[start..];
            name.starts_with("acl").then(|| name.to_owned())
        })
        .collect();
    let symbols = symbols();
    let names: BTreeSet<String> = symbols.iter().map(|(n, _)| (*n).to_owned()).collect();
    assert_eq!(names, declared);
    assert_eq!(names.len(), symbols.len(), "duplicate names");
    let addresses: BTreeSet<usize> = symbols.iter().map(|(_, p)| p.addr()).collect();
    assert_eq!(addresses.len(), 13);
    assert!(!addresses.contains(&0));
}
