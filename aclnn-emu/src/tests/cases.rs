//! The public cases of `../shared/cases`, run through the C functions as generated code would.

use gmmfr_dialect::reference::{compare, nd_to_nz};
use gmmfr_dialect::tensor::{DType, Tensor};

use super::*;

const TOLERANCE: f64 = 1e-5;

/// The cases with expected.npy that lie inside the Ascend profile (SPEC 4).
const IN_PROFILE: [&str; 5] = [
    "a8w4_offset",
    "a8w8_cumsum",
    "a8w8_doc_small",
    "a8w8_ep_garbage",
    "a8w8_noshared_nopts",
];

fn check_output(name: &str, p: &Problem, expected: &Tensor) {
    let c = compare(&p.output(), expected).unwrap();
    eprintln!("{name}: relative error {:.2e}", c.relative);
    assert!(c.within(TOLERANCE), "{name}: {c:?}");
}

// Every valid in-profile case runs through create/GetWorkspaceSize/malloc/launch/sync/destroy/free
// and matches expected.npy to 1e-5 relative, with no object left alive.
#[test]
fn valid_cases_match_expected() {
    let _s = serial(Release::Newer);
    let mut seen = Vec::new();
    for entry in std::fs::read_dir(cases_dir()).unwrap() {
        let dir = entry.unwrap().path();
        if !dir.is_dir() {
            continue;
        }
        let case = Case::load(&dir).unwrap();
        let Some(expected) = &case.expected else { continue };
        let name = case.name();
        if !IN_PROFILE.contains(&name.as_str()) {
            continue;
        }
        let mut p = Problem::from_case(&case);
        let outcome = p.run();
        assert_eq!(outcome.prepare, ACLNN_SUCCESS, "{name}: {:?}", last_error());
        assert_eq!(outcome.launch, Some(ACLNN_SUCCESS), "{name}: {:?}", last_error());
        let m = case.x.shape()[0] as u64;
        let n = *case.scale.shape().last().unwrap() as u64;
        assert_eq!(outcome.workspace_size, 4 * m * n, "{name}: workspace rule");
        check_output(&name, &p, expected);
        seen.push(name);
    }
    seen.sort();
    assert_eq!(seen, IN_PROFILE);
}

// The loops-only case (n = 96 < 256) is valid IR but outside SPEC 4: GetWorkspaceSize refuses it
// with 161002, as the real aclnn would, and nothing is launched.
#[test]
fn loops_only_case_is_refused_by_get_workspace_size() {
    let _s = serial(Release::Newer);
    let mut p = Problem::from_case(&load("a8w8_loops_only"));
    let outcome = p.run();
    assert_eq!(outcome.prepare, ACLNN_ERR_PARAM_INVALID);
    assert_eq!(outcome.launch, None);
    assert!(
        last_error().unwrap().contains("n must be >= 256, is 96"),
        "{:?}",
        last_error()
    );
    assert!(p.untouched());
}

// The two invalid cases pass GetWorkspaceSize (their problems are data-dependent) and fail at
// launch with the emulator's precondition code, writing nothing.
#[test]
fn invalid_cases_fail_at_launch_and_write_nothing() {
    let _s = serial(Release::Newer);
    for (name, reason) in [
        ("bad_rowidx_oob", "row_index[5] = 8 is outside [0, 8)"),
        ("bad_gl_sum_gt_m", "sum(group_list) = 19 exceeds m = 16"),
    ] {
        let case = load(name);
        assert!(case.expect_error.is_some());
        let mut p = Problem::from_case(&case);
        let outcome = p.run();
        assert_eq!(outcome.prepare, ACLNN_SUCCESS, "{name}");
        assert_eq!(outcome.launch, Some(GMMFR_EMU_ERR_RUNTIME_PRECONDITION), "{name}");
        let message = last_error().unwrap();
        assert!(message.contains(reason), "{name}: {message}");
        assert!(p.untouched(), "{name}: output written");
    }
}

// The doc example through WeightNzV2 with a tuning config (an aclIntArray) gives the same result.
#[test]
fn weight_nz_v2_with_tuning_config() {
    let _s = serial(Release::Newer);
    let case = load("a8w8_doc_small");
    let mut p = Problem::from_case(&case);
    p.entry = Entry::WeightNzV2;
    p.tuning_config = Some(vec![8, 8]);
    let outcome = p.run();
    assert_eq!((outcome.prepare, outcome.launch), (0, Some(0)), "{:?}", last_error());
    check_output("a8w8_doc_small (V2)", &p, case.expected.as_ref().unwrap());
}

// The A8W4 case with its weight cast to FRACTAL_NZ (block 16 x 64) runs through WeightNzV2 and
// matches the same expected output as the ND weight through V3.
#[test]
fn a8w4_nz_weight_through_weight_nz_v2() {
    let _s = serial(Release::Newer);
    let case = load("a8w4_offset");
    let mut p = Problem::from_case(&case);
    let k = case.x.shape()[1];
    let n = case.scale.shape()[2];
    let nz = nd_to_nz(&case.w).unwrap();
    assert_eq!(nz.shape(), [4, 2, 16, 16, 64]);
    p.x2 = Some(p.keep(nz, |t| Desc::nz(t, k, n)));
    p.entry = Entry::WeightNzV2;
    let outcome = p.run();
    assert_eq!((outcome.prepare, outcome.launch), (0, Some(0)), "{:?}", last_error());
    check_output("a8w4_offset (NZ)", &p, case.expected.as_ref().unwrap());
}

// Alternatives SPEC 4 accepts: an int32 rowIndex and a bf16 scale (A8W8) give the reference
// result on the same data.
#[test]
fn int32_row_index_and_bf16_scale() {
    let _s = serial(Release::Newer);
    let case = load("a8w8_cumsum");
    let mut p = Problem::from_case(&case);
    let ri: Vec<i32> = case.row_index.as_i64().unwrap().iter().map(|&v| v as i32).collect();
    let ri = Tensor::from_i32(case.row_index.shape().to_vec(), ri).unwrap();
    p.row_index = Some(p.keep(ri, Desc::nd));
    let outcome = p.run();
    assert_eq!((outcome.prepare, outcome.launch), (0, Some(0)), "{:?}", last_error());
    check_output("a8w8_cumsum (i32 rowIndex)", &p, case.expected.as_ref().unwrap());

    let scale = Tensor::from_f32_rounded(DType::BF16, case.scale.shape().to_vec(), case.scale.to_f32_vec()).unwrap();
    p.scale = Some(p.keep(scale, Desc::nd));
    let n = case.scale.shape()[1];
    p.set_out(case.attrs.output_bs as usize, n);
    let outcome = p.run();
    assert_eq!((outcome.prepare, outcome.launch), (0, Some(0)), "{:?}", last_error());
    let c = compare(&p.output(), &p.expected()).unwrap();
    assert_eq!(c.max_abs_error, 0.0, "{c:?}");
}

// The older release runs the whitelisted A8W8 shape (k = 2048, n = 7168) and matches the reference.
#[test]
fn older_release_runs_whitelisted_shape() {
    let _s = serial(Release::Older);
    let mut p = Problem::a8w8(2, 2048, 7168, 1, 2, 1);
    let outcome = p.run();
    assert_eq!((outcome.prepare, outcome.launch), (0, Some(0)), "{:?}", last_error());
    let c = compare(&p.output(), &p.expected()).unwrap();
    assert_eq!(c.max_abs_error, 0.0, "{c:?}");
}
