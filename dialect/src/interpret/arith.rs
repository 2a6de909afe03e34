//! `arith` ops on scalars and, elementwise, on tensors.

use super::attrs;
use super::error::{Fault, InterpretError};
use super::exec::{Exec, fault, unsupported};
use super::scalar::{self, Cast, CmpPredicate, FloatBinary, IntBinary, OverflowFlags};
use super::types::TypeDesc;
use super::value::{ElemType, RtValue, Scalar, TensorValue, element_count, unravel};
use half::{bf16, f16};
use melior::ir::{OperationRef, operation::OperationLike};

/// An elementwise `arith` op.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArithOp {
    /// addi, subi, muli, divsi, remsi, maxsi, minsi.
    Int(IntBinary),
    /// addf, subf, mulf, divf.
    Float(FloatBinary),
    /// extf, truncf, extsi, trunci, index_cast, sitofp.
    Cast(Cast),
    /// cmpi.
    CmpI,
    /// select.
    Select,
}

impl ArithOp {
    /// The op of a name; `None` for anything else (including `arith.constant`).
    pub fn of(name: &str) -> Option<Self> {
        Some(match name {
            "arith.addi" => ArithOp::Int(IntBinary::Add),
            "arith.subi" => ArithOp::Int(IntBinary::Sub),
            "arith.muli" => ArithOp::Int(IntBinary::Mul),
            "arith.divsi" => ArithOp::Int(IntBinary::DivS),
            "arith.remsi" => ArithOp::Int(IntBinary::RemS),
            "arith.maxsi" => ArithOp::Int(IntBinary::MaxS),
            "arith.minsi" => ArithOp::Int(IntBinary::MinS),
            "arith.addf" => ArithOp::Float(FloatBinary::Add),
            "arith.subf" => ArithOp::Float(FloatBinary::Sub),
            "arith.mulf" => ArithOp::Float(FloatBinary::Mul),
            "arith.divf" => ArithOp::Float(FloatBinary::Div),
            "arith.extf" => ArithOp::Cast(Cast::ExtF),
            "arith.truncf" => ArithOp::Cast(Cast::TruncF),
            "arith.extsi" => ArithOp::Cast(Cast::ExtSI),
            "arith.trunci" => ArithOp::Cast(Cast::TruncI),
            "arith.index_cast" => ArithOp::Cast(Cast::Index),
            "arith.sitofp" => ArithOp::Cast(Cast::SIToFP),
            "arith.cmpi" => ArithOp::CmpI,
            "arith.select" => ArithOp::Select,
            _ => return None,
        })
    }
}

/// Evaluates `arith.constant`: a scalar integer, index or float, or a dense tensor.
pub fn constant(exec: &mut Exec, op: OperationRef<'_, '_>) -> Result<RtValue, InterpretError> {
    let attribute = op
        .attribute("value")
        .map_err(|_| unsupported(op, "attribute 'value' is missing"))?;
    match exec.result_type(op, 0)? {
        TypeDesc::Scalar(ElemType::Int(ty)) => {
            let value = attrs::int(op, "value")
                .ok_or_else(|| unsupported(op, format!("value {attribute} is not an integer")))?;
            Ok(RtValue::Scalar(Scalar::int(ty, i128::from(value))))
        }
        TypeDesc::Scalar(elem) => {
            let value = attrs::float(op, "value")
                .ok_or_else(|| unsupported(op, format!("value {attribute} is not a float")))?;
            // The attribute holds a value of the result type, so each conversion is exact.
            let value = value as f32;
            Ok(RtValue::Scalar(match elem {
                ElemType::F16 => Scalar::F16(f16::from_f32(value)),
                ElemType::BF16 => Scalar::BF16(bf16::from_f32(value)),
                _ => Scalar::F32(value),
            }))
        }
        TypeDesc::Tensor { elem, dims } => {
            let shape: Option<Vec<usize>> = dims.iter().copied().collect();
            let shape = shape.ok_or_else(|| unsupported(op, "a constant of dynamic shape"))?;
            let data = attrs::dense_values(attribute, elem).map_err(|reason| unsupported(op, reason))?;
            let tensor = TensorValue::new(elem, shape, data).map_err(|f| fault(op, f))?;
            Ok(RtValue::tensor(tensor))
        }
        TypeDesc::Other(name) => Err(unsupported(op, format!("constants of type {name}"))),
    }
}

/// The `nsw`/`nuw` flags of an op (`#arith.overflow<...>`).
fn overflow_flags(op: OperationRef<'_, '_>) -> Result<OverflowFlags, InterpretError> {
    let Ok(attribute) = op.attribute("overflowFlags") else {
        return Ok(OverflowFlags::default());
    };
    let text = attribute.to_string();
    let inner = text
        .strip_prefix("#arith.overflow<")
        .and_then(|t| t.strip_suffix('>'))
        .ok_or_else(|| unsupported(op, format!("overflowFlags {text}")))?;
    let mut flags = OverflowFlags::default();
    for word in inner.split(',').map(str::trim) {
        match word {
            "none" => {}
            "nsw" => flags.nsw = true,
            "nuw" => flags.nuw = true,
            other => return Err(unsupported(op, format!("overflow flag '{other}'"))),
        }
    }
    Ok(flags)
}

/// Refuses fast-math flags other than `none` (they make some results poison) and rounding
/// modes other than to-nearest-even.
fn check_float_attributes(op: OperationRef<'_, '_>) -> Result<(), InterpretError> {
    if let Ok(attribute) = op.attribute("fastmath") {
        let text = attribute.to_string();
        if text != "#arith.fastmath<none>" {
            return Err(unsupported(op, format!("fast-math flags {text}")));
        }
    }
    if op.attribute("roundingmode").is_ok() {
        match attrs::int(op, "roundingmode") {
            Some(0) => {}
            _ => {
                return Err(unsupported(op, "rounding modes other than to_nearest_even"));
            }
        }
    }
    Ok(())
}

/// Applies `f` to scalars, or elementwise to tensors of one shape (producing `result_elem`).
fn map_elementwise(
    operands: &[RtValue],
    result_elem: ElemType,
    mut f: impl FnMut(&[Scalar]) -> Result<Scalar, Fault>,
) -> Result<RtValue, Fault> {
    let scalars: Option<Vec<Scalar>> = operands
        .iter()
        .map(|v| match v {
            RtValue::Scalar(s) => Some(*s),
            RtValue::Tensor(_) => None,
        })
        .collect();
    if let Some(scalars) = scalars {
        return Ok(RtValue::Scalar(f(&scalars)?));
    }
    let mut tensors = Vec::with_capacity(operands.len());
    for (index, v) in operands.iter().enumerate() {
        match v {
            RtValue::Tensor(t) => tensors.push(t),
            RtValue::Scalar(s) => {
                return Err(Fault::Type {
                    what: format!("operand #{index}"),
                    expected: "a tensor like the other operands".into(),
                    actual: s.elem().to_string(),
                });
            }
        }
    }
    let shape = tensors.first().map(|t| t.shape().to_vec()).unwrap_or_default();
    for (index, t) in tensors.iter().enumerate() {
        if t.shape() != shape.as_slice() {
            return Err(Fault::Shape {
                what: format!("operand #{index}"),
                expected: format!("shape {shape:?} (of operand #0)"),
                actual: format!("{:?}", t.shape()),
            });
        }
    }
    let count = element_count(&shape)?;
    let mut data = Vec::with_capacity(count);
    let mut args = Vec::with_capacity(tensors.len());
    for i in 0..count {
        args.clear();
        args.extend(tensors.iter().map(|t| t.data()[i]));
        let value = f(&args).map_err(|source| Fault::At {
            index: unravel(i, &shape),
            source: Box::new(source),
        })?;
        data.push(value);
    }
    Ok(RtValue::tensor(TensorValue::new(result_elem, shape, data)?))
}

/// The element type of a result type.
fn result_elem(exec: &mut Exec, op: OperationRef<'_, '_>) -> Result<ElemType, InterpretError> {
    match exec.result_type(op, 0)? {
        TypeDesc::Scalar(elem) | TypeDesc::Tensor { elem, .. } => Ok(elem),
        TypeDesc::Other(name) => Err(unsupported(op, format!("results of type {name}"))),
    }
}

/// What an elementwise op reads from its attributes and result type.
#[derive(Clone, Copy, Debug)]
pub struct ArithAttrs {
    elem: ElemType,
    flags: OverflowFlags,
    predicate: Option<CmpPredicate>,
}

fn arith_attrs(exec: &mut Exec, op: OperationRef<'_, '_>, kind: ArithOp) -> Result<ArithAttrs, InterpretError> {
    let key = op.to_raw().ptr.cast_const();
    if let Some(attrs) = exec.arith_attrs.get(&key) {
        return Ok(*attrs);
    }
    let elem = result_elem(exec, op)?;
    let flags = match kind {
        ArithOp::Int(_) | ArithOp::Cast(_) => overflow_flags(op)?,
        _ => OverflowFlags::default(),
    };
    if matches!(kind, ArithOp::Float(_) | ArithOp::Cast(_)) {
        check_float_attributes(op)?;
    }
    let predicate = match kind {
        ArithOp::CmpI => {
            let value = attrs::int(op, "predicate")
                .ok_or_else(|| unsupported(op, "attribute 'predicate' is missing or not an integer"))?;
            Some(CmpPredicate::from_i64(value).ok_or_else(|| unsupported(op, format!("cmpi predicate {value}")))?)
        }
        _ => None,
    };
    let attrs = ArithAttrs { elem, flags, predicate };
    exec.arith_attrs.insert(key, attrs);
    Ok(attrs)
}

/// Evaluates an elementwise `arith` op on scalars or tensors.
pub fn elementwise(exec: &mut Exec, op: OperationRef<'_, '_>, kind: ArithOp) -> Result<RtValue, InterpretError> {
    let operands = exec.operands(op)?;
    let arity = match kind {
        ArithOp::Cast(_) => 1,
        ArithOp::Select => 3,
        _ => 2,
    };
    if operands.len() != arity {
        return Err(unsupported(
            op,
            format!("expected {arity} operands, got {}", operands.len()),
        ));
    }
    let ArithAttrs { elem, flags, predicate } = arith_attrs(exec, op, kind)?;
    let result = match kind {
        ArithOp::Int(int_op) => map_elementwise(&operands, elem, |s| scalar::int_binary(int_op, s[0], s[1], flags)),
        ArithOp::Float(float_op) => map_elementwise(&operands, elem, |s| scalar::float_binary(float_op, s[0], s[1])),
        ArithOp::Cast(cast) => map_elementwise(&operands, elem, |s| scalar::cast(cast, s[0], elem, flags)),
        ArithOp::CmpI => match predicate {
            Some(predicate) => map_elementwise(&operands, elem, |s| scalar::cmpi(predicate, s[0], s[1])),
            None => Err(Fault::Internal("cmpi without a predicate".into())),
        },
        ArithOp::Select => match (&operands[0], &operands[1], &operands[2]) {
            // A scalar condition with tensor arms selects a whole tensor.
            (RtValue::Scalar(c), RtValue::Tensor(_), RtValue::Tensor(_)) => {
                match scalar::select(*c, Scalar::bool(true), Scalar::bool(false)) {
                    Ok(Scalar::Int(_, 0)) => Ok(operands[2].clone()),
                    Ok(_) => Ok(operands[1].clone()),
                    Err(f) => Err(f),
                }
            }
            _ => map_elementwise(&operands, elem, |s| scalar::select(s[0], s[1], s[2])),
        },
    };
    result.map_err(|f| fault(op, f))
}
