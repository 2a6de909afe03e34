//! Every validation path of GetWorkspaceSize returns its documented code (and a message naming
//! the parameter), and leaves nothing alive.

use std::ptr::null;

use gmmfr_dialect::profile::CannVersion;
use gmmfr_dialect::reference::compare;

use super::*;
use crate::abi::{ACL_BF16, ACL_FLOAT16, ACL_INT4, ACL_INT32};

fn doc() -> Problem {
    Problem::from_case(&load("a8w8_doc_small"))
}

fn a8w4_case() -> Problem {
    Problem::from_case(&load("a8w4_offset"))
}

/// Runs `p` and checks GetWorkspaceSize's code and that its message contains `fragment`.
#[track_caller]
fn expect(mut p: Problem, code: i32, fragment: &str) {
    let outcome = p.run();
    assert_eq!(
        outcome.prepare,
        code,
        "expected {code} ({fragment}), got {outcome:?}: {:?}",
        last_error()
    );
    let message = last_error().unwrap_or_default();
    assert!(message.contains(fragment), "message {message:?} lacks {fragment:?}");
    assert!(p.untouched());
}

/// Runs `p` and checks it succeeds and equals the reference on the same data.
#[track_caller]
fn expect_runs(mut p: Problem) {
    let outcome = p.run();
    assert_eq!((outcome.prepare, outcome.launch), (0, Some(0)), "{:?}", last_error());
    let c = compare(&p.output(), &p.expected()).unwrap();
    assert_eq!(c.max_abs_error, 0.0, "{c:?}");
}

/// A named edit of a valid problem: the message fragment it must produce, and the edit.
type Edit = (&'static str, fn(&mut Problem));

fn retype(d: &mut Option<Desc>, dtype: i32) {
    d.as_mut().unwrap().dtype = dtype;
}

fn reshape(d: &mut Option<Desc>, view: &[i64]) {
    d.as_mut().unwrap().reshape(view);
}

// A null required tensor (x1, x2, scale, groupList, rowIndex, out) is 161001.
#[test]
fn null_required_tensors() {
    let _s = serial(Release::Newer);
    let cases: [Edit; 6] = [
        ("x1 is null", |p| p.x1 = None),
        ("x2 is null", |p| p.x2 = None),
        ("scale is null", |p| p.scale = None),
        ("groupList is null", |p| p.group_list = None),
        ("rowIndex is null", |p| p.row_index = None),
        ("out is null", |p| p.out = None),
    ];
    for (fragment, edit) in cases {
        let mut p = doc();
        edit(&mut p);
        expect(p, ACLNN_ERR_PARAM_NULLPTR, fragment);
    }
}

// Null workspaceSize or executor out-parameters are 161001 and nothing is created.
#[test]
fn null_out_parameters() {
    let _s = serial(Release::Newer);
    let mut p = doc();
    p.null_workspace_size = true;
    expect(p, ACLNN_ERR_PARAM_NULLPTR, "workspaceSize is null");
    let mut p = doc();
    p.null_executor = true;
    expect(p, ACLNN_ERR_PARAM_NULLPTR, "executor is null");
}

// A present tensor without data is 161001.
#[test]
fn null_tensor_data() {
    let _s = serial(Release::Newer);
    let mut p = doc();
    p.logit.as_mut().unwrap().data = null_mut();
    expect(p, ACLNN_ERR_PARAM_NULLPTR, "logit tensorData is null");
}

// A8W4 without bias, pertokenScale, sharedInput or logit is 161001 (all four are required).
#[test]
fn a8w4_requires_its_optionals() {
    let _s = serial(Release::Newer);
    let cases: [Edit; 4] = [
        ("bias is null", |p| p.bias = None),
        ("pertokenScaleOptional is null", |p| p.pertoken_scale = None),
        ("sharedInput is null", |p| p.shared_input = None),
        ("logit is null", |p| p.logit = None),
    ];
    for (fragment, edit) in cases {
        let mut p = a8w4_case();
        edit(&mut p);
        expect(p, ACLNN_ERR_PARAM_NULLPTR, fragment);
    }
}

// Older release: sharedInput without logit, or logit without sharedInput, is 161001.
#[test]
fn older_release_pairs_shared_input_with_logit() {
    let _s = serial(Release::Older);
    let mut p = doc();
    p.logit = None;
    expect(p, ACLNN_ERR_PARAM_NULLPTR, "logit is null: the older release");
    let p = Problem::from_case(&load("a8w8_noshared_nopts"));
    expect(p, ACLNN_ERR_PARAM_NULLPTR, "sharedInput is null: the older release");
}

// The weight must be FRACTAL_NZ with the 5-D storage and offset 0 for WeightNz, ND for V3.
#[test]
fn weight_format() {
    let _s = serial(Release::Newer);
    let mut p = doc();
    p.x2.as_mut().unwrap().format = crate::ACL_FORMAT_ND;
    expect(p, ACLNN_ERR_PARAM_INVALID, "x2 format must be ACL_FORMAT_FRACTAL_NZ");
    let mut p = doc();
    p.x2.as_mut().unwrap().storage = vec![8, 256, 256];
    expect(
        p,
        ACLNN_ERR_PARAM_INVALID,
        "x2 storage dims must be the FRACTAL_NZ shape",
    );
    let mut p = doc();
    p.x2.as_mut().unwrap().offset = 16;
    expect(p, ACLNN_ERR_PARAM_INVALID, "x2 offset must be 0");
    let mut p = a8w4_case();
    p.x2.as_mut().unwrap().format = crate::ACL_FORMAT_FRACTAL_NZ;
    expect(p, ACLNN_ERR_PARAM_INVALID, "x2 format must be ACL_FORMAT_ND");
}

// Each entry point accepts only its weight dtypes: no A8W4 on WeightNz, no A8W8 on V3.
#[test]
fn entry_point_weight_dtypes() {
    let _s = serial(Release::Newer);
    let mut p = a8w4_case();
    p.entry = Entry::WeightNz;
    expect(
        p,
        ACLNN_ERR_PARAM_INVALID,
        "x2 dtype must be ACL_INT8 (A8W8), is ACL_INT4",
    );
    let mut p = doc();
    p.entry = Entry::V3;
    expect(p, ACLNN_ERR_PARAM_INVALID, "x2 dtype must be ACL_INT4");
}

// Older release: A8W8 only for k = 2048, n = 7168, so DeepSeek-V2-Lite's k = 1408, n = 2048 is
// 161002; the newer release runs the same problem.
#[test]
fn older_release_k_n_whitelist() {
    let _s = serial(Release::Older);
    expect(
        Problem::a8w8(2, 1408, 2048, 1, 2, 1),
        ACLNN_ERR_PARAM_INVALID,
        "k must be 2048 on the older release",
    );
    set_release(Release::Newer);
    expect_runs(Problem::a8w8(2, 1408, 2048, 1, 2, 1));
    set_release(Release::from(CannVersion::Older));
    assert_eq!(release(), Release::Older);
    expect(
        Problem::a8w8(2, 2048, 2048, 1, 2, 1),
        ACLNN_ERR_PARAM_INVALID,
        "n must be 7168 on the older release",
    );
}

// Attributes: dtype != 0, transposes, groupListType outside {0, 1} (older: only 1), a negative
// sharedInputOffset and a negative tuning value are 161002.
#[test]
fn attributes() {
    let _s = serial(Release::Newer);
    let cases: [Edit; 6] = [
        ("dtype must be 0", |p| p.dtype = 1),
        ("transposeX1 must be false", |p| p.transpose_x1 = true),
        ("transposeX2 must be false", |p| p.transpose_x2 = true),
        ("groupListType must be 0 (cumsum) or 1 (counts), is 2", |p| {
            p.group_list_type = 2
        }),
        ("sharedInputOffset must be >= 0, is -1", |p| p.shared_input_offset = -1),
        ("tuningConfigOptional values must be >= 0, is -1", |p| {
            p.entry = Entry::WeightNzV2;
            p.tuning_config = Some(vec![4, -1]);
        }),
    ];
    for (fragment, edit) in cases {
        let mut p = doc();
        edit(&mut p);
        expect(p, ACLNN_ERR_PARAM_INVALID, fragment);
    }
    set_release(Release::Older);
    let p = Problem::from_case(&load("a8w8_cumsum"));
    expect(
        p,
        ACLNN_ERR_PARAM_INVALID,
        "groupListType must be 1 (counts) on the older release, is 0",
    );
}

// Each operand's dtype is checked against SPEC 4 (unknown codes included).
#[test]
fn operand_dtypes() {
    let _s = serial(Release::Newer);
    let cases: [Edit; 9] = [
        ("x1 dtype must be ACL_INT8, is ACL_FLOAT16", |p| {
            retype(&mut p.x1, ACL_FLOAT16)
        }),
        ("x1 dtype must be ACL_INT8, is aclDataType 4", |p| retype(&mut p.x1, 4)),
        ("scale dtype must be ACL_FLOAT or ACL_BF16, is ACL_INT32", |p| {
            retype(&mut p.scale, ACL_INT32)
        }),
        ("pertokenScaleOptional dtype must be ACL_FLOAT", |p| {
            retype(&mut p.pertoken_scale, ACL_BF16)
        }),
        ("groupList dtype must be ACL_INT64", |p| {
            retype(&mut p.group_list, ACL_INT32)
        }),
        ("sharedInput dtype must be ACL_BF16", |p| {
            retype(&mut p.shared_input, crate::ACL_FLOAT)
        }),
        ("logit dtype must be ACL_FLOAT", |p| retype(&mut p.logit, ACL_FLOAT16)),
        ("rowIndex dtype must be ACL_INT64 or ACL_INT32", |p| {
            retype(&mut p.row_index, crate::ACL_FLOAT)
        }),
        ("out dtype must be ACL_FLOAT", |p| retype(&mut p.out, ACL_BF16)),
    ];
    for (fragment, edit) in cases {
        let mut p = doc();
        edit(&mut p);
        expect(p, ACLNN_ERR_PARAM_INVALID, fragment);
    }
    let a8w4: [Edit; 3] = [
        ("rowIndex dtype must be ACL_INT64 (A8W4)", |p| {
            retype(&mut p.row_index, ACL_INT32)
        }),
        ("scale dtype must be ACL_INT64", |p| {
            retype(&mut p.scale, crate::ACL_FLOAT)
        }),
        ("bias dtype must be ACL_FLOAT (A8W4 bias)", |p| {
            retype(&mut p.bias, ACL_BF16)
        }),
    ];
    for (fragment, edit) in a8w4 {
        let mut p = a8w4_case();
        edit(&mut p);
        expect(p, ACLNN_ERR_PARAM_INVALID, fragment);
    }
    // The A8W8 bias is bf16 (SPEC 1.4), not f32.
    let mut p = doc();
    let bias = Tensor::from_f32(vec![8, 256], vec![0.0; 8 * 256]).unwrap();
    p.bias = Some(p.keep(bias, Desc::nd));
    expect(p, ACLNN_ERR_PARAM_INVALID, "bias dtype must be ACL_BF16 (A8W8 bias)");
    // An int4 x1 is not int8.
    let mut p = doc();
    retype(&mut p.x1, ACL_INT4);
    expect(p, ACLNN_ERR_PARAM_INVALID, "x1 dtype");
}

// Shape relations between operands (doc example: m = 64, k = 256, n = 256, e = 8, batch = 8).
#[test]
fn shape_relations() {
    let _s = serial(Release::Newer);
    let cases: [Edit; 10] = [
        ("x1 view dims must be rank 2", |p| reshape(&mut p.x1, &[1, 64, 256])),
        ("x2 view dims must be (e, k, n) with k = 256", |p| {
            p.x2.as_mut().unwrap().view = vec![8, 240, 256];
        }),
        ("scale view dims must be (e, n) = [8, 256]", |p| {
            reshape(&mut p.scale, &[8, 224])
        }),
        ("groupList view dims must be (e,) = [8]", |p| {
            reshape(&mut p.group_list, &[9])
        }),
        ("pertokenScaleOptional view dims must be (m,) = [64]", |p| {
            reshape(&mut p.pertoken_scale, &[64, 1])
        }),
        ("logit view dims must be (m,) = [64]", |p| reshape(&mut p.logit, &[63])),
        ("rowIndex view dims must be (m,) = [64]", |p| {
            reshape(&mut p.row_index, &[65])
        }),
        ("sharedInput view dims must be (bsdp, n) with n = 256", |p| {
            reshape(&mut p.shared_input, &[4, 128])
        }),
        ("out view dims must be (batch, n) with n = 256", |p| {
            reshape(&mut p.out, &[8, 224])
        }),
        ("batch (rows of out) must be <= m = 64, is 65", |p| {
            reshape(&mut p.out, &[65, 256])
        }),
    ];
    for (fragment, edit) in cases {
        let mut p = doc();
        edit(&mut p);
        expect(p, ACLNN_ERR_PARAM_INVALID, fragment);
    }
    let mut p = doc();
    p.shared_input_offset = 7;
    expect(
        p,
        ACLNN_ERR_PARAM_INVALID,
        "sharedInputOffset + bsdp must be <= 8 (rows of out), is 7 + 2",
    );
}

// offsetOptional is A8W4 only and the antiquant tensors are never accepted.
#[test]
fn offset_and_antiquant() {
    let _s = serial(Release::Newer);
    let mut p = doc();
    p.entry = Entry::WeightNzV2;
    let offset = Tensor::from_f32(vec![8, 1, 256], vec![0.0; 8 * 256]).unwrap();
    p.offset = Some(p.keep(offset, Desc::nd));
    expect(p, ACLNN_ERR_PARAM_INVALID, "offsetOptional must be absent for A8W8");
    let mut p = a8w4_case();
    p.antiquant_scale = p.offset.clone();
    expect(p, ACLNN_ERR_PARAM_INVALID, "antiquantScaleOptional must be absent");
    let mut p = a8w4_case();
    p.antiquant_offset = p.offset.clone();
    expect(p, ACLNN_ERR_PARAM_INVALID, "antiquantOffsetOptional must be absent");
}

// Empty tensors, non-contiguous strides and too-small storage are 161002.
#[test]
fn layout_of_descriptors() {
    let _s = serial(Release::Newer);
    let cases: [Edit; 6] = [
        ("x1 must be a non-empty tensor", |p| reshape(&mut p.x1, &[0, 256])),
        ("logit must be a non-empty tensor", |p| reshape(&mut p.logit, &[0])),
        ("x1 strides must be contiguous row-major [256, 1], is [1, 64]", |p| {
            p.x1.as_mut().unwrap().strides = vec![1, 64];
        }),
        ("x2 strides must be contiguous", |p| {
            p.x2.as_mut().unwrap().strides = vec![65536, 1, 256]
        }),
        ("x1 storage dims must be at least offset + 16384", |p| {
            p.x1.as_mut().unwrap().storage = vec![64, 255];
        }),
        ("out storage dims must be at least offset + 2048 = 2049", |p| {
            p.out.as_mut().unwrap().offset = 1
        }),
    ];
    for (fragment, edit) in cases {
        let mut p = doc();
        edit(&mut p);
        expect(p, ACLNN_ERR_PARAM_INVALID, fragment);
    }
    // A size-1 dim may carry any stride (it is never stepped over): the A8W4 scale is (e, 1, n).
    let mut p = a8w4_case();
    p.scale.as_mut().unwrap().strides[1] = 12345;
    let outcome = p.run();
    assert_eq!((outcome.prepare, outcome.launch), (0, Some(0)));
}

// A8W8 size rules of SPEC 4: k % 16, n % 32, n >= 256, e in [1, 256], m in [1, 131072],
// batch in [1, 16384], bsdp in [1, 2048].
#[test]
fn a8w8_size_ranges() {
    let _s = serial(Release::Newer);
    expect(
        Problem::a8w8(2, 40, 256, 1, 2, 1),
        ACLNN_ERR_PARAM_INVALID,
        "k must be a multiple of 16, is 40",
    );
    expect(
        Problem::a8w8(2, 16, 272, 1, 2, 1),
        ACLNN_ERR_PARAM_INVALID,
        "n must be a multiple of 32, is 272",
    );
    expect(
        Problem::a8w8(2, 16, 224, 1, 2, 1),
        ACLNN_ERR_PARAM_INVALID,
        "n must be >= 256, is 224",
    );
    expect(
        Problem::a8w8(257, 16, 256, 257, 1, 1),
        ACLNN_ERR_PARAM_INVALID,
        "e (experts) must be in [1, 256], is 257",
    );
    expect(
        Problem::a8w8(131_073, 16, 256, 1, 1, 1),
        ACLNN_ERR_PARAM_INVALID,
        "m (rows of x1) must be in [1, 131072]",
    );
    expect(
        Problem::a8w8(16_385, 16, 256, 1, 16_385, 1),
        ACLNN_ERR_PARAM_INVALID,
        "batch (rows of out) must be in [1, 16384], is 16385",
    );
    expect(
        Problem::a8w8(2049, 16, 256, 1, 2049, 2049),
        ACLNN_ERR_PARAM_INVALID,
        "bsdp (rows of sharedInput) must be in [1, 2048], is 2049",
    );
    // The edges themselves are accepted.
    expect_runs(Problem::a8w8(256, 16, 256, 256, 16, 16));
}

// A8W4 size rules: k % 64, 128 < k <= 18432, n % 8 (ND) or % 64 (NZ), n > 64; edges run.
#[test]
fn a8w4_size_ranges() {
    let _s = serial(Release::Newer);
    expect(
        Problem::a8w4(2, 160, 72, 1, 2, false),
        ACLNN_ERR_PARAM_INVALID,
        "k must be a multiple of 64 (A8W4), is 160",
    );
    expect(
        Problem::a8w4(2, 128, 72, 1, 2, false),
        ACLNN_ERR_PARAM_INVALID,
        "k must be in (128, 18432] (A8W4), is 128",
    );
    expect(
        Problem::a8w4(2, 192, 100, 1, 2, false),
        ACLNN_ERR_PARAM_INVALID,
        "n must be a multiple of 8 (A8W4, ND",
    );
    expect(
        Problem::a8w4(2, 192, 64, 1, 2, false),
        ACLNN_ERR_PARAM_INVALID,
        "n must be > 64 (A8W4), is 64",
    );
    expect(
        Problem::a8w4(2, 192, 72, 1, 2, true),
        ACLNN_ERR_PARAM_INVALID,
        "n must be a multiple of 64 (A8W4, FRACTAL_NZ",
    );
    expect_runs(Problem::a8w4(3, 192, 72, 2, 2, false));
    expect_runs(Problem::a8w4(3, 192, 128, 2, 2, true));
}

// A handle that was destroyed (or never made) is 161002, for tensors and int arrays.
#[test]
fn stale_handles() {
    let _s = serial(Release::Newer);
    let p = doc();
    let x1 = p.x1.as_ref().unwrap().create();
    // SAFETY: created above.
    assert_eq!(unsafe { aclDestroyTensor(x1) }, 0);
    let mut size = 0u64;
    let mut executor: *mut aclOpExecutor = null_mut();
    let bogus = std::ptr::without_provenance::<aclTensor>(0x1000);
    // SAFETY: handles are only looked up; the out-parameters are locals.
    let status = unsafe {
        aclnnGroupedMatmulFinalizeRoutingWeightNzGetWorkspaceSize(
            x1,
            bogus,
            bogus,
            null(),
            null(),
            bogus,
            null(),
            null(),
            bogus,
            0,
            1.0,
            0,
            0,
            0,
            1,
            bogus.cast_mut(),
            &mut size,
            &mut executor,
        )
    };
    assert_eq!(status, ACLNN_ERR_PARAM_INVALID);
    assert!(
        last_error().unwrap().contains("x1 must be a live aclTensor"),
        "{:?}",
        last_error()
    );
    let values = [1i64];
    // SAFETY: one value.
    let array = unsafe { aclCreateIntArray(values.as_ptr(), 1) };
    // SAFETY: created above.
    assert_eq!(unsafe { aclDestroyIntArray(array) }, 0);
    let mut p = doc();
    p.entry = Entry::WeightNzV2;
    let tensors: Vec<*mut aclTensor> = [&p.x1, &p.x2, &p.scale, &p.group_list, &p.row_index, &p.out]
        .iter()
        .map(|d| d.as_ref().unwrap().create())
        .collect();
    let t = |i: usize| tensors[i].cast_const();
    // SAFETY: live handles and a stale int array (only looked up); locals as out-parameters.
    let status = unsafe {
        aclnnGroupedMatmulFinalizeRoutingWeightNzV2GetWorkspaceSize(
            t(0),
            t(1),
            t(2),
            null(),
            null(),
            null(),
            null(),
            null(),
            t(3),
            null(),
            null(),
            t(4),
            0,
            1.0,
            0,
            0,
            0,
            1,
            array,
            tensors[5],
            &mut size,
            &mut executor,
        )
    };
    assert_eq!(status, ACLNN_ERR_PARAM_INVALID);
    assert!(
        last_error()
            .unwrap()
            .contains("tuningConfigOptional must be a live aclIntArray")
    );
    for t in tensors {
        // SAFETY: created above.
        assert_eq!(unsafe { aclDestroyTensor(t) }, 0);
    }
    assert_eq!(live_objects(), LiveCounts::default());
    drop(p);
}
