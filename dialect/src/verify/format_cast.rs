//! Verifier of `npu.format_cast` (SPEC section 3).

use super::checker::Checker;
use super::violation::{Subject, Violation};
use crate::types::{Elem, TensorInfo};

/// acl_format of an ND tensor.
pub const ACL_FORMAT_ND: i64 = 2;
/// acl_format of FRACTAL_NZ.
pub const ACL_FORMAT_FRACTAL_NZ: i64 = 29;

/// The inner NZ block width n0: 32 bytes of elements (32 for i8, 64 for i4, 16 for f16/bf16,
/// 8 for f32). SPEC 3 gives i8 and i4; the float widths follow the same 32-byte rule.
pub fn nz_block_n(elem: &Elem) -> Option<u64> {
    match elem {
        Elem::I8 => Some(32),
        Elem::I4 => Some(64),
        Elem::F16 | Elem::BF16 => Some(16),
        Elem::F32 => Some(8),
        _ => None,
    }
}

/// Checks that input and result are the same weight in ND and NZ layouts.
pub fn verify(c: &mut Checker<'_, '_, '_>) {
    let Some(format) = c.int_attr_in("acl_format", &[ACL_FORMAT_ND, ACL_FORMAT_FRACTAL_NZ]) else {
        return;
    };
    let (Some(input), Some(out)) = (c.op.operand_info("input"), c.op.result_info(0)) else {
        return;
    };
    let Some(n0) = nz_block_n(&input.elem) else {
        c.report(Violation::ElementType {
            subject: Subject::Operand("input"),
            expected: "i8, i4, f16, bf16 or f32".to_string(),
            actual: input.text.clone(),
        });
        return;
    };
    if out.elem != input.elem {
        c.report(Violation::ElementType {
            subject: Subject::Result("out"),
            expected: input.elem.to_string(),
            actual: out.text.clone(),
        });
        return;
    }
    let (nd, nz, nd_subject, nz_subject) = if format == ACL_FORMAT_FRACTAL_NZ {
        (&input, &out, Subject::Operand("input"), Subject::Result("out"))
    } else {
        (&out, &input, Subject::Result("out"), Subject::Operand("input"))
    };
    if nd.rank() < 2 {
        c.report(Violation::Rank {
            subject: nd_subject,
            expected: 2,
            layout: "(..., k, n) at least".to_string(),
            actual: nd.text.clone(),
        });
        return;
    }
    if nz.rank() != nd.rank() + 2 {
        c.report(Violation::Rank {
            subject: nz_subject,
            expected: nd.rank() + 2,
            layout: format!("(..., n1, k1, 16, {n0}) for an ND tensor of rank {}", nd.rank()),
            actual: nz.text.clone(),
        });
        return;
    }
    check_pair(c, nd, nz, nz_subject, n0);
}

fn check_pair(c: &mut Checker<'_, '_, '_>, nd: &TensorInfo, nz: &TensorInfo, nz_subject: Subject, n0: u64) {
    let batch = nd.rank() - 2;
    for index in 0..batch {
        if let (Some(a), Some(b)) = (nd.dim(index), nz.dim(index))
            && a != b
        {
            c.report(Violation::Dim {
                subject: nz_subject.clone(),
                dim: index,
                symbol: "batch".to_string(),
                expected: a,
                source_of: "the ND shape".to_string(),
                actual: b,
            });
        }
    }
    if let Some(n) = nd.dim(batch + 1) {
        c.expect_dim(
            nz_subject.clone(),
            nz,
            batch,
            "n1",
            n.div_ceil(n0),
            format!("ceil(n / {n0}) with n = {n}"),
        );
    }
    if let Some(k) = nd.dim(batch) {
        c.expect_dim(
            nz_subject.clone(),
            nz,
            batch + 1,
            "k1",
            k.div_ceil(16),
            format!("ceil(k / 16) with k = {k}"),
        );
    }
    c.expect_dim(nz_subject.clone(), nz, batch + 2, "16", 16, "the NZ block".to_string());
    c.expect_dim(nz_subject, nz, batch + 3, "n0", n0, "the NZ block".to_string());
}
