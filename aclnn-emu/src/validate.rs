//! GetWorkspaceSize's validation (SPEC 4, with SPEC 1.2's older restrictions): the call's
//! descriptors in, a [`Plan`] or the first failed check out. Checks run in the order real aclnn
//! reports them: required pointers (161001), then absent-optional combinations (161001), then
//! dtype, format, shape and stride of each operand in parameter order, attributes and size
//! ranges (161002).

use gmmfr_dialect::reference::GmmfrAttrs;
use gmmfr_dialect::tensor::{DType, checked_num_elements};

use crate::abi::{ACL_FORMAT_FRACTAL_NZ, ACL_FORMAT_ND, data_type_name, element_size, element_type, format_name};
use crate::executor::{Entry, Operand, Plan, Scenario, workspace_size};
use crate::release::Release;
use crate::status::AclnnError;
use crate::tensor::AclTensor;

/// A GetWorkspaceSize call with its handles resolved to descriptors (`None` = null pointer).
/// Entry points without the V2 parameters leave `offset`, the antiquant tensors and
/// `tuning_config` absent.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Call {
    pub(crate) entry: Entry,
    pub(crate) x1: Option<AclTensor>,
    pub(crate) x2: Option<AclTensor>,
    pub(crate) scale: Option<AclTensor>,
    pub(crate) bias: Option<AclTensor>,
    pub(crate) offset: Option<AclTensor>,
    pub(crate) antiquant_scale: Option<AclTensor>,
    pub(crate) antiquant_offset: Option<AclTensor>,
    pub(crate) pertoken_scale: Option<AclTensor>,
    pub(crate) group_list: Option<AclTensor>,
    pub(crate) shared_input: Option<AclTensor>,
    pub(crate) logit: Option<AclTensor>,
    pub(crate) row_index: Option<AclTensor>,
    pub(crate) dtype: i64,
    pub(crate) shared_input_weight: f32,
    pub(crate) shared_input_offset: i64,
    pub(crate) transpose_x1: bool,
    pub(crate) transpose_x2: bool,
    pub(crate) group_list_type: i64,
    pub(crate) tuning_config: Option<Vec<i64>>,
    pub(crate) out: Option<AclTensor>,
}

const REQUIRED: &str = "a required parameter";

fn required<'a>(name: &str, t: &'a Option<AclTensor>) -> Result<&'a AclTensor, AclnnError> {
    t.as_ref().ok_or_else(|| AclnnError::null(name, REQUIRED))
}

/// Validates a call and plans its launch.
pub(crate) fn plan(call: &Call, release: Release) -> Result<Plan, AclnnError> {
    let x1 = required("x1", &call.x1)?;
    let x2 = required("x2", &call.x2)?;
    let scale = required("scale", &call.scale)?;
    let group_list = required("groupList", &call.group_list)?;
    let row_index = required("rowIndex", &call.row_index)?;
    let out = required("out", &call.out)?;

    let scenario = match (call.entry, element_type(x2.data_type)) {
        (Entry::WeightNz | Entry::WeightNzV2, Some(DType::I8)) => Scenario::A8W8,
        (Entry::WeightNzV2 | Entry::V3, Some(DType::I4)) => Scenario::A8W4,
        _ => {
            let accepted = match call.entry {
                Entry::WeightNz => "ACL_INT8 (A8W8)",
                Entry::WeightNzV2 => "ACL_INT8 (A8W8) or ACL_INT4 (A8W4)",
                Entry::V3 => "ACL_INT4 (A8W4 with an ND weight)",
            };
            return Err(AclnnError::invalid("x2 dtype", accepted, data_type_name(x2.data_type)));
        }
    };

    if scenario == Scenario::A8W4 {
        for (name, present) in [
            ("pertokenScaleOptional", call.pertoken_scale.is_some()),
            ("bias", call.bias.is_some()),
            ("sharedInput", call.shared_input.is_some()),
            ("logit", call.logit.is_some()),
        ] {
            if !present {
                return Err(AclnnError::null(
                    name,
                    "A8W4 requires pertokenScale, bias, sharedInput and logit",
                ));
            }
        }
    }
    if release == Release::Older && call.shared_input.is_some() != call.logit.is_some() {
        return Err(AclnnError::null(
            if call.shared_input.is_none() {
                "sharedInput"
            } else {
                "logit"
            },
            "the older release requires sharedInput and logit both present or both absent",
        ));
    }

    let x = nd_operand("x1", x1, &[DType::I8], "ACL_INT8")?;
    let [m, k] = dims::<2>("x1", &x.shape, "(m, k)")?;
    let (w, e, n) = weight(call.entry, scenario, x2, k)?;

    let scale = match scenario {
        Scenario::A8W8 => {
            let op = nd_operand("scale", scale, &[DType::F32, DType::BF16], "ACL_FLOAT or ACL_BF16")?;
            shape("scale", &op, &[e, n], "(e, n)")?;
            op
        }
        Scenario::A8W4 => {
            let op = nd_operand("scale", scale, &[DType::I64], "ACL_INT64 (f32 bits in the low word)")?;
            shape("scale", &op, &[e, 1, n], "(e, 1, n)")?;
            op
        }
    };
    let bias = match (scenario, &call.bias) {
        (_, None) => None,
        (Scenario::A8W8, Some(t)) => Some(nd_operand("bias", t, &[DType::BF16], "ACL_BF16 (A8W8 bias)")?),
        (Scenario::A8W4, Some(t)) => Some(nd_operand("bias", t, &[DType::F32], "ACL_FLOAT (A8W4 bias)")?),
    };
    if let Some(op) = &bias {
        shape("bias", op, &[e, n], "(e, n)")?;
    }
    let offset = match (scenario, &call.offset) {
        (_, None) => None,
        (Scenario::A8W8, Some(_)) => {
            return Err(AclnnError::invalid(
                "offsetOptional",
                "absent for A8W8 (A8W4 only)",
                "present",
            ));
        }
        (Scenario::A8W4, Some(t)) => {
            let op = nd_operand("offsetOptional", t, &[DType::F32], "ACL_FLOAT")?;
            shape("offsetOptional", &op, &[e, 1, n], "(e, 1, n)")?;
            Some(op)
        }
    };
    for (name, t) in [
        ("antiquantScaleOptional", &call.antiquant_scale),
        ("antiquantOffsetOptional", &call.antiquant_offset),
    ] {
        if t.is_some() {
            return Err(AclnnError::invalid(
                name,
                "absent (GMMFR quantizes activations, it has no weight antiquantization)",
                "present",
            ));
        }
    }
    let pertoken_scale = optional("pertokenScaleOptional", &call.pertoken_scale, &[m], "(m,)")?;
    let group_list = nd_operand("groupList", group_list, &[DType::I64], "ACL_INT64")?;
    shape("groupList", &group_list, &[e], "(e,)")?;
    let shared_input = match &call.shared_input {
        None => None,
        Some(t) => {
            let op = nd_operand("sharedInput", t, &[DType::BF16], "ACL_BF16")?;
            let [_, cols] = dims::<2>("sharedInput", &op.shape, "(bsdp, n)")?;
            if cols != n {
                return Err(AclnnError::invalid(
                    "sharedInput view dims",
                    format!("(bsdp, n) with n = {n}"),
                    format!("{:?}", op.shape),
                ));
            }
            Some(op)
        }
    };
    let logit = optional("logit", &call.logit, &[m], "(m,)")?;
    let row_index = match scenario {
        Scenario::A8W8 => nd_operand(
            "rowIndex",
            row_index,
            &[DType::I64, DType::I32],
            "ACL_INT64 or ACL_INT32",
        )?,
        Scenario::A8W4 => nd_operand("rowIndex", row_index, &[DType::I64], "ACL_INT64 (A8W4)")?,
    };
    shape("rowIndex", &row_index, &[m], "(m,)")?;
    let out = nd_operand("out", out, &[DType::F32], "ACL_FLOAT")?;
    let [batch, out_n] = dims::<2>("out", &out.shape, "(batch, n)")?;
    if out_n != n {
        return Err(AclnnError::invalid(
            "out view dims",
            format!("(batch, n) with n = {n}"),
            format!("{:?}", out.shape),
        ));
    }

    attributes(call, release)?;
    sizes(call, release, scenario, Sizes { m, k, n, e, batch })?;
    if let Some(op) = &shared_input {
        let bsdp = op.shape.first().copied().unwrap_or(0);
        range("bsdp (rows of sharedInput)", bsdp, 1, 2048)?;
        // sharedInputOffset >= 0 was checked with the attributes.
        let offset = usize::try_from(call.shared_input_offset).unwrap_or(usize::MAX);
        if offset.checked_add(bsdp).is_none_or(|end| end > batch) {
            return Err(AclnnError::invalid(
                "sharedInputOffset + bsdp",
                format!("<= {batch} (rows of out)"),
                format!("{} + {bsdp}", call.shared_input_offset),
            ));
        }
    }

    let workspace_size = workspace_size(m, n)
        .ok_or_else(|| AclnnError::invalid("workspace size", "representable in 64 bits", format!("4 * {m} * {n}")))?;
    Ok(Plan {
        entry: call.entry,
        m,
        e,
        x,
        w,
        scale,
        bias,
        offset,
        pertoken_scale,
        group_list,
        shared_input,
        logit,
        row_index,
        out,
        attrs: GmmfrAttrs {
            dtype: call.dtype,
            shared_input_weight: call.shared_input_weight,
            shared_input_offset: call.shared_input_offset,
            output_bs: i64::try_from(batch).unwrap_or(i64::MAX),
            group_list_type: call.group_list_type,
            tuning_config: call.tuning_config.clone(),
        },
        workspace_size,
    })
}

/// An optional f32 vector operand of the given shape.
fn optional(
    name: &str,
    t: &Option<AclTensor>,
    expected: &[usize],
    symbolic: &str,
) -> Result<Option<Operand>, AclnnError> {
    let Some(t) = t else {
        return Ok(None);
    };
    let op = nd_operand(name, t, &[DType::F32], "ACL_FLOAT")?;
    shape(name, &op, expected, symbolic)?;
    Ok(Some(op))
}

/// View dims as usize (they are non-negative: checked by aclCreateTensor).
fn usize_dims(name: &str, dims: &[i64]) -> Result<Vec<usize>, AclnnError> {
    dims.iter()
        .map(|&d| usize::try_from(d).map_err(|_| AclnnError::invalid(format!("{name} dims"), "representable sizes", d)))
        .collect()
}

fn dtype_of(name: &str, t: &AclTensor, allowed: &[DType], allowed_text: &str) -> Result<DType, AclnnError> {
    element_type(t.data_type)
        .filter(|d| allowed.contains(d))
        .ok_or_else(|| AclnnError::invalid(format!("{name} dtype"), allowed_text, data_type_name(t.data_type)))
}

fn non_empty(name: &str, shape: &[usize]) -> Result<(), AclnnError> {
    if shape.contains(&0) {
        return Err(AclnnError::invalid(
            name,
            "a non-empty tensor (empty tensors are not supported)",
            format!("view dims {shape:?}"),
        ));
    }
    Ok(())
}

/// Row-major contiguity of the view: each stride equals the product of the dims inside it. A
/// dim of size 1 may carry any stride (it is never stepped over).
fn contiguous(name: &str, shape: &[usize], strides: &[i64]) -> Result<(), AclnnError> {
    let mut expected = 1usize;
    let mut want = vec![0i64; shape.len()];
    for (w, &d) in want.iter_mut().zip(shape).rev() {
        *w = i64::try_from(expected).unwrap_or(i64::MAX);
        expected = expected.saturating_mul(d);
    }
    let ok = shape.len() == strides.len()
        && shape
            .iter()
            .zip(strides)
            .zip(&want)
            .all(|((&d, &s), &w)| d == 1 || s == w);
    if ok {
        Ok(())
    } else {
        Err(AclnnError::invalid(
            format!("{name} strides"),
            format!("contiguous row-major {want:?}"),
            format!("{strides:?}"),
        ))
    }
}

fn elements(name: &str, dims: &[usize]) -> Result<usize, AclnnError> {
    checked_num_elements(dims).ok_or_else(|| {
        AclnnError::invalid(
            format!("{name} dims"),
            "a size that fits in memory",
            format!("{dims:?}"),
        )
    })
}

fn data_present(name: &str, t: &AclTensor) -> Result<(), AclnnError> {
    if t.data == 0 {
        return Err(AclnnError::null(
            format!("{name} tensorData"),
            "a present tensor needs device memory",
        ));
    }
    Ok(())
}

/// An ND operand: allowed dtype, ND format, non-empty, contiguous, storage large enough for
/// offset + elements, data present.
fn nd_operand(name: &str, t: &AclTensor, allowed: &[DType], allowed_text: &str) -> Result<Operand, AclnnError> {
    let dtype = dtype_of(name, t, allowed, allowed_text)?;
    if t.format != ACL_FORMAT_ND {
        return Err(AclnnError::invalid(
            format!("{name} format"),
            "ACL_FORMAT_ND",
            format_name(t.format),
        ));
    }
    let shape = usize_dims(name, &t.view_dims)?;
    non_empty(name, &shape)?;
    contiguous(name, &shape, &t.strides)?;
    let numel = elements(name, &shape)?;
    let storage = elements(name, &usize_dims(name, &t.storage_dims)?)?;
    let offset = usize::try_from(t.offset).unwrap_or(usize::MAX);
    if offset.checked_add(numel).is_none_or(|end| end > storage) {
        return Err(AclnnError::invalid(
            format!("{name} storage dims"),
            format!("at least offset + {numel} = {} elements", offset.saturating_add(numel)),
            format!("{:?} ({storage} elements)", t.storage_dims),
        ));
    }
    data_present(name, t)?;
    let byte_offset = offset
        .checked_mul(element_size(dtype))
        .ok_or_else(|| AclnnError::invalid(format!("{name} offset"), "a byte offset that fits in memory", t.offset))?;
    Ok(Operand {
        data: t.data,
        byte_offset,
        dtype,
        shape,
    })
}

/// The weight x2: view dims (e, k, n) with k from x1; FRACTAL_NZ with storage
/// (e, ceil(n/n0), ceil(k/16), 16, n0) for the NZ entry points (n0 = 32 for int8, 64 for int4),
/// ND for V3. Returns the operand (shaped as stored), e and n.
fn weight(entry: Entry, scenario: Scenario, t: &AclTensor, k: usize) -> Result<(Operand, usize, usize), AclnnError> {
    let dtype = match scenario {
        Scenario::A8W8 => DType::I8,
        Scenario::A8W4 => DType::I4,
    };
    let view = usize_dims("x2", &t.view_dims)?;
    let [e, wk, n] = dims::<3>("x2", &view, "(e, k, n)")?;
    non_empty("x2", &view)?;
    if wk != k {
        return Err(AclnnError::invalid(
            "x2 view dims",
            format!("(e, k, n) with k = {k} (columns of x1)"),
            format!("{view:?}"),
        ));
    }
    contiguous("x2", &view, &t.strides)?;
    if !entry.nz_weight() {
        return Ok((nd_operand("x2", t, &[dtype], "ACL_INT4")?, e, n));
    }
    if t.format != ACL_FORMAT_FRACTAL_NZ {
        return Err(AclnnError::invalid(
            "x2 format",
            format!("ACL_FORMAT_FRACTAL_NZ for {}", entry.name()),
            format_name(t.format),
        ));
    }
    let n0 = match scenario {
        Scenario::A8W8 => 32,
        Scenario::A8W4 => 64,
    };
    let storage = vec![e, n.div_ceil(n0), k.div_ceil(16), 16, n0];
    if usize_dims("x2", &t.storage_dims)? != storage {
        return Err(AclnnError::invalid(
            "x2 storage dims",
            format!("the FRACTAL_NZ shape (e, ceil(n/{n0}), ceil(k/16), 16, {n0}) = {storage:?}"),
            format!("{:?}", t.storage_dims),
        ));
    }
    if t.offset != 0 {
        return Err(AclnnError::invalid("x2 offset", "0 for a FRACTAL_NZ weight", t.offset));
    }
    elements("x2", &storage)?;
    data_present("x2", t)?;
    Ok((
        Operand {
            data: t.data,
            byte_offset: 0,
            dtype,
            shape: storage,
        },
        e,
        n,
    ))
}

/// The dims of a rank-`R` operand.
fn dims<const R: usize>(name: &str, shape: &[usize], symbolic: &str) -> Result<[usize; R], AclnnError> {
    <[usize; R]>::try_from(shape).map_err(|_| {
        AclnnError::invalid(
            format!("{name} view dims"),
            format!("rank {R} {symbolic}"),
            format!("{shape:?}"),
        )
    })
}

fn shape(name: &str, op: &Operand, expected: &[usize], symbolic: &str) -> Result<(), AclnnError> {
    if op.shape != expected {
        return Err(AclnnError::invalid(
            format!("{name} view dims"),
            format!("{symbolic} = {expected:?}"),
            format!("{:?}", op.shape),
        ));
    }
    Ok(())
}

fn attributes(call: &Call, release: Release) -> Result<(), AclnnError> {
    if call.dtype != 0 {
        return Err(AclnnError::invalid(
            "dtype",
            "0 (ACL_FLOAT output, the only one the kernel produces)",
            call.dtype,
        ));
    }
    if call.transpose_x1 {
        return Err(AclnnError::invalid("transposeX1", "false", "true"));
    }
    if call.transpose_x2 {
        return Err(AclnnError::invalid("transposeX2", "false", "true"));
    }
    match (release, call.group_list_type) {
        (Release::Older, 1) | (Release::Newer, 0 | 1) => {}
        (Release::Older, v) => {
            return Err(AclnnError::invalid(
                "groupListType",
                "1 (counts) on the older release",
                v,
            ));
        }
        (Release::Newer, v) => return Err(AclnnError::invalid("groupListType", "0 (cumsum) or 1 (counts)", v)),
    }
    if call.shared_input_offset < 0 {
        return Err(AclnnError::invalid(
            "sharedInputOffset",
            ">= 0",
            call.shared_input_offset,
        ));
    }
    if let Some(v) = call.tuning_config.as_ref().and_then(|t| t.iter().find(|&&v| v < 0)) {
        return Err(AclnnError::invalid("tuningConfigOptional values", ">= 0", v));
    }
    Ok(())
}

struct Sizes {
    m: usize,
    k: usize,
    n: usize,
    e: usize,
    batch: usize,
}

fn range(subject: &str, value: usize, low: usize, high: usize) -> Result<(), AclnnError> {
    if (low..=high).contains(&value) {
        Ok(())
    } else {
        Err(AclnnError::invalid(subject, format!("in [{low}, {high}]"), value))
    }
}

fn multiple(subject: &str, value: usize, of: usize, why: &str) -> Result<(), AclnnError> {
    if value.is_multiple_of(of) {
        Ok(())
    } else {
        Err(AclnnError::invalid(subject, format!("a multiple of {of}{why}"), value))
    }
}

fn sizes(call: &Call, release: Release, scenario: Scenario, s: Sizes) -> Result<(), AclnnError> {
    let Sizes { m, k, n, e, batch } = s;
    match scenario {
        Scenario::A8W8 => {
            multiple("k", k, 16, "")?;
            multiple("n", n, 32, "")?;
            if n < 256 {
                return Err(AclnnError::invalid("n", ">= 256", n));
            }
            if release == Release::Older {
                if k != 2048 {
                    return Err(AclnnError::invalid(
                        "k",
                        "2048 on the older release (A8W8 whitelist)",
                        k,
                    ));
                }
                if n != 7168 {
                    return Err(AclnnError::invalid(
                        "n",
                        "7168 on the older release (A8W8 whitelist)",
                        n,
                    ));
                }
            }
        }
        Scenario::A8W4 => {
            multiple("k", k, 64, " (A8W4)")?;
            if !(k > 128 && k <= 18432) {
                return Err(AclnnError::invalid("k", "in (128, 18432] (A8W4)", k));
            }
            if call.entry.nz_weight() {
                multiple("n", n, 64, " (A8W4, FRACTAL_NZ weight)")?;
            } else {
                multiple("n", n, 8, " (A8W4, ND weight)")?;
            }
            if n <= 64 {
                return Err(AclnnError::invalid("n", "> 64 (A8W4)", n));
            }
        }
    }
    range("e (experts)", e, 1, 256)?;
    range("m (rows of x1)", m, 1, 131_072)?;
    range("batch (rows of out)", batch, 1, 16_384)?;
    if batch > m {
        return Err(AclnnError::invalid("batch (rows of out)", format!("<= m = {m}"), batch));
    }
    Ok(())
}
