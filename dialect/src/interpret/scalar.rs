//! The scalar semantics of the `arith` ops, as MLIR defines them, on one element.
//!
//! Integer results wrap at the exact width of their type. Division or remainder by zero and
//! signed division overflow (undefined behaviour in MLIR) are errors, as is an overflow under
//! an `nsw`/`nuw` flag (a poison result). `f16`/`bf16` arithmetic is computed in f32, then
//! rounded to the type, to nearest-even. f32 carries at least 2p + 2 bits for either type's p, so this
//! double rounding equals the correctly rounded op in that type (Figueroa's bound for +, -, *,
//! /); the one case the bound does not cover is a bf16 quotient in the subnormal range, where
//! f32 is subnormal too.

use super::error::Fault;
use super::value::{ElemType, IntType, Scalar};
use half::{bf16, f16};

/// An integer binary op.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IntBinary {
    /// `arith.addi`.
    Add,
    /// `arith.subi`.
    Sub,
    /// `arith.muli`.
    Mul,
    /// `arith.divsi` (rounds toward zero).
    DivS,
    /// `arith.remsi` (takes the sign of the dividend).
    RemS,
    /// `arith.maxsi`.
    MaxS,
    /// `arith.minsi`.
    MinS,
}

/// A float binary op.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FloatBinary {
    /// `arith.addf`.
    Add,
    /// `arith.subf`.
    Sub,
    /// `arith.mulf`.
    Mul,
    /// `arith.divf`.
    Div,
}

/// The `nsw`/`nuw` flags of `arith.addi`, `subi`, `muli` and `trunci`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OverflowFlags {
    /// No signed wrap.
    pub nsw: bool,
    /// No unsigned wrap.
    pub nuw: bool,
}

/// A cast op.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cast {
    /// `arith.extf`: f16/bf16 to f32, exact.
    ExtF,
    /// `arith.truncf`: f32 to f16/bf16, round to nearest even.
    TruncF,
    /// `arith.extsi`: sign extension to a wider integer.
    ExtSI,
    /// `arith.trunci`: keeps the low bits.
    TruncI,
    /// `arith.index_cast`: sign-extends into `index`, truncates out of it.
    Index,
    /// `arith.sitofp`: signed integer to float, round to nearest even.
    SIToFP,
}

/// An `arith.cmpi` predicate, numbered as MLIR's `arith::CmpIPredicate`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CmpPredicate {
    /// 0.
    Eq,
    /// 1.
    Ne,
    /// 2.
    Slt,
    /// 3.
    Sle,
    /// 4.
    Sgt,
    /// 5.
    Sge,
    /// 6.
    Ult,
    /// 7.
    Ule,
    /// 8.
    Ugt,
    /// 9.
    Uge,
}

impl CmpPredicate {
    /// The predicate of an attribute value.
    pub fn from_i64(value: i64) -> Option<Self> {
        use CmpPredicate::*;
        Some(match value {
            0 => Eq,
            1 => Ne,
            2 => Slt,
            3 => Sle,
            4 => Sgt,
            5 => Sge,
            6 => Ult,
            7 => Ule,
            8 => Ugt,
            9 => Uge,
            _ => return None,
        })
    }
}

fn int_operand(value: Scalar, what: &str) -> Result<(IntType, i64), Fault> {
    match value.defined()? {
        Scalar::Int(ty, v) => Ok((ty, v)),
        other => Err(Fault::Type {
            what: what.to_string(),
            expected: "an integer or index".into(),
            actual: other.elem().to_string(),
        }),
    }
}

fn same_int(a: Scalar, b: Scalar) -> Result<(IntType, i64, i64), Fault> {
    let (ta, va) = int_operand(a, "lhs")?;
    let (tb, vb) = int_operand(b, "rhs")?;
    if ta != tb {
        return Err(Fault::Type {
            what: "rhs".into(),
            expected: ElemType::Int(ta).to_string(),
            actual: ElemType::Int(tb).to_string(),
        });
    }
    Ok((ta, va, vb))
}

/// Evaluates an integer binary op.
pub fn int_binary(op: IntBinary, a: Scalar, b: Scalar, flags: OverflowFlags) -> Result<Scalar, Fault> {
    let (ty, x, y) = same_int(a, b)?;
    let (sx, sy) = (i128::from(x), i128::from(y));
    let (ux, uy) = (u128::from(ty.unsigned(x)), u128::from(ty.unsigned(y)));
    let poison = |flag: &'static str| Fault::FlagOverflow {
        flag,
        operands: vec![x, y],
        elem: ElemType::Int(ty),
    };
    let unsigned_fits = |v: Option<u128>| v.is_some_and(|v| v < (1u128 << ty.bits()));
    let exact = match op {
        IntBinary::Add | IntBinary::Sub | IntBinary::Mul => {
            let (signed, unsigned) = match op {
                IntBinary::Add => (sx + sy, ux.checked_add(uy)),
                IntBinary::Sub => (sx - sy, ux.checked_sub(uy)),
                _ => (sx * sy, ux.checked_mul(uy)),
            };
            if flags.nsw && !ty.fits_signed(signed) {
                return Err(poison("nsw"));
            }
            if flags.nuw && !unsigned_fits(unsigned) {
                return Err(poison("nuw"));
            }
            signed
        }
        IntBinary::DivS | IntBinary::RemS => {
            if y == 0 {
                return Err(Fault::DivisionByZero { lhs: x });
            }
            let quotient = sx / sy;
            if !ty.fits_signed(quotient) {
                return Err(Fault::DivisionOverflow {
                    lhs: x,
                    rhs: y,
                    elem: ElemType::Int(ty),
                });
            }
            if op == IntBinary::DivS { quotient } else { sx % sy }
        }
        IntBinary::MaxS => sx.max(sy),
        IntBinary::MinS => sx.min(sy),
    };
    Ok(Scalar::int(ty, exact))
}

/// Evaluates a float binary op.
pub fn float_binary(op: FloatBinary, a: Scalar, b: Scalar) -> Result<Scalar, Fault> {
    let apply = |x: f32, y: f32| match op {
        FloatBinary::Add => x + y,
        FloatBinary::Sub => x - y,
        FloatBinary::Mul => x * y,
        FloatBinary::Div => x / y,
    };
    match (a.defined()?, b.defined()?) {
        (Scalar::F32(x), Scalar::F32(y)) => Ok(Scalar::F32(apply(x, y))),
        (Scalar::BF16(x), Scalar::BF16(y)) => Ok(Scalar::BF16(bf16::from_f32(apply(x.to_f32(), y.to_f32())))),
        (Scalar::F16(x), Scalar::F16(y)) => Ok(Scalar::F16(f16::from_f32(apply(x.to_f32(), y.to_f32())))),
        (x, y) => Err(Fault::Type {
            what: "operands".into(),
            expected: "two floats of the same type".into(),
            actual: format!("{} and {}", x.elem(), y.elem()),
        }),
    }
}

/// Evaluates `arith.cmpi`; the result is an `i1`.
pub fn cmpi(predicate: CmpPredicate, a: Scalar, b: Scalar) -> Result<Scalar, Fault> {
    let (ty, x, y) = same_int(a, b)?;
    let (ux, uy) = (ty.unsigned(x), ty.unsigned(y));
    use CmpPredicate::*;
    Ok(Scalar::bool(match predicate {
        Eq => x == y,
        Ne => x != y,
        Slt => x < y,
        Sle => x <= y,
        Sgt => x > y,
        Sge => x >= y,
        Ult => ux < uy,
        Ule => ux <= uy,
        Ugt => ux > uy,
        Uge => ux >= uy,
    }))
}

/// Evaluates `arith.select` on one element. The arm not chosen may be unspecified.
pub fn select(condition: Scalar, a: Scalar, b: Scalar) -> Result<Scalar, Fault> {
    match condition.defined()? {
        Scalar::Int(IntType::I1, c) => Ok(if c != 0 { a } else { b }),
        other => Err(Fault::Type {
            what: "condition".into(),
            expected: "i1".into(),
            actual: other.elem().to_string(),
        }),
    }
}

/// `value` rounded to `precision` significant bits, to nearest, ties to even.
fn round_to_precision(value: i64, precision: u32) -> i128 {
    let magnitude = u128::from(value.unsigned_abs());
    let bits = 128 - magnitude.leading_zeros();
    if bits <= precision {
        return i128::from(value);
    }
    let shift = bits - precision;
    let kept = magnitude >> shift;
    let rest = magnitude & ((1u128 << shift) - 1);
    let half = 1u128 << (shift - 1);
    let kept = if rest > half || (rest == half && kept & 1 == 1) {
        kept + 1
    } else {
        kept
    };
    // At most 65 bits: fits in i128.
    let rounded = (kept << shift) as i128;
    if value < 0 { -rounded } else { rounded }
}

/// Evaluates a cast to `to`.
pub fn cast(kind: Cast, value: Scalar, to: ElemType, flags: OverflowFlags) -> Result<Scalar, Fault> {
    let value = value.defined()?;
    let mismatch = || Fault::Type {
        what: "cast".into(),
        expected: format!("a valid {kind:?} from {}", value.elem()),
        actual: format!("target {to}"),
    };
    match (kind, value, to) {
        (Cast::ExtF, Scalar::F16(x), ElemType::F32) => Ok(Scalar::F32(x.to_f32())),
        (Cast::ExtF, Scalar::BF16(x), ElemType::F32) => Ok(Scalar::F32(x.to_f32())),
        (Cast::TruncF, Scalar::F32(x), ElemType::F16) => Ok(Scalar::F16(f16::from_f32(x))),
        (Cast::TruncF, Scalar::F32(x), ElemType::BF16) => Ok(Scalar::BF16(bf16::from_f32(x))),
        (Cast::ExtSI, Scalar::Int(from, v), ElemType::Int(to_ty))
            if from != IntType::Index && to_ty != IntType::Index && to_ty.bits() > from.bits() =>
        {
            // Canonical values are already sign-extended.
            Ok(Scalar::Int(to_ty, v))
        }
        (Cast::TruncI, Scalar::Int(from, v), ElemType::Int(to_ty))
            if from != IntType::Index && to_ty != IntType::Index && to_ty.bits() < from.bits() =>
        {
            if flags.nsw && !to_ty.fits_signed(i128::from(v)) {
                return Err(Fault::FlagOverflow {
                    flag: "nsw",
                    operands: vec![v],
                    elem: to,
                });
            }
            if flags.nuw && !to_ty.fits_unsigned(i128::from(from.unsigned(v))) {
                return Err(Fault::FlagOverflow {
                    flag: "nuw",
                    operands: vec![v],
                    elem: to,
                });
            }
            Ok(Scalar::int(to_ty, i128::from(v)))
        }
        (Cast::Index, Scalar::Int(from, v), ElemType::Int(to_ty))
            if (from == IntType::Index) != (to_ty == IntType::Index) =>
        {
            Ok(Scalar::int(to_ty, i128::from(v)))
        }
        (Cast::SIToFP, Scalar::Int(from, v), _) if from != IntType::Index => match to {
            // Rust's int-to-float `as` rounds to nearest, ties to even.
            ElemType::F32 => Ok(Scalar::F32(v as f32)),
            // Rounded to the target precision first, the value is exact in f32 and in the
            // target, so no second rounding happens.
            ElemType::BF16 => Ok(Scalar::BF16(bf16::from_f32(round_to_precision(v, 8) as f32))),
            ElemType::F16 => Ok(Scalar::F16(f16::from_f32(round_to_precision(v, 11) as f32))),
            ElemType::Int(_) => Err(mismatch()),
        },
        _ => Err(mismatch()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Integer ops wrap at the exact width; divsi by zero and MIN / -1 are errors.
    #[test]
    fn integer_width_semantics() {
        let i32s = |v: i64| Scalar::Int(IntType::I32, v);
        let none = OverflowFlags::default();
        assert_eq!(
            int_binary(IntBinary::Add, i32s(i64::from(i32::MAX)), i32s(1), none),
            Ok(i32s(i64::from(i32::MIN)))
        );
        assert!(matches!(
            int_binary(
                IntBinary::Add,
                i32s(i64::from(i32::MAX)),
                i32s(1),
                OverflowFlags { nsw: true, nuw: false }
            ),
            Err(Fault::FlagOverflow { flag: "nsw", .. })
        ));
        assert_eq!(int_binary(IntBinary::DivS, i32s(-7), i32s(2), none), Ok(i32s(-3)));
        assert_eq!(int_binary(IntBinary::RemS, i32s(-7), i32s(2), none), Ok(i32s(-1)));
        assert!(matches!(
            int_binary(IntBinary::DivS, i32s(1), i32s(0), none),
            Err(Fault::DivisionByZero { lhs: 1 })
        ));
        assert!(matches!(
            int_binary(IntBinary::DivS, i32s(i64::from(i32::MIN)), i32s(-1), none),
            Err(Fault::DivisionOverflow { .. })
        ));
        assert_eq!(cmpi(CmpPredicate::Ult, i32s(-1), i32s(3)), Ok(Scalar::bool(false)));
        assert_eq!(cmpi(CmpPredicate::Slt, i32s(-1), i32s(3)), Ok(Scalar::bool(true)));
        assert_eq!(
            cast(
                Cast::TruncI,
                Scalar::Int(IntType::I64, 1 << 32 | 5),
                ElemType::Int(IntType::I32),
                none
            ),
            Ok(i32s(5))
        );
    }

    // sitofp rounds once to nearest even, also for bf16 and f16 targets.
    #[test]
    fn sitofp_rounds_once() {
        let none = OverflowFlags::default();
        // 2^24 + 2^16 + 1 is just above a bf16 midpoint: a double rounding through f32 would
        // land on the midpoint and round down to even.
        let v = (1i64 << 24) + (1 << 16) + 1;
        let got = cast(Cast::SIToFP, Scalar::Int(IntType::I64, v), ElemType::BF16, none);
        assert_eq!(got, Ok(Scalar::BF16(bf16::from_f32(((1i64 << 24) + (1 << 17)) as f32))));
        let got = cast(Cast::SIToFP, Scalar::Int(IntType::I32, 65520), ElemType::F16, none);
        assert_eq!(got, Ok(Scalar::F16(f16::INFINITY)));
        let got = cast(Cast::SIToFP, Scalar::Int(IntType::I32, 65519), ElemType::F16, none);
        assert_eq!(got, Ok(Scalar::F16(f16::MAX)));
    }
}
