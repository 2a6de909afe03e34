//! `tensor` dialect ops: creation, queries, element access, reshapes and static slices.

use super::attrs::{self, DYNAMIC};
use super::error::{Fault, InterpretError};
use super::exec::{Exec, fault, unsupported};
use super::value::{RtValue, Scalar, TensorValue, element_count};
use melior::ir::{OperationRef, operation::OperationLike};

fn to_usize(value: i64, what: impl Into<String>) -> Result<usize, Fault> {
    usize::try_from(value).map_err(|_| Fault::NegativeSize {
        what: what.into(),
        value,
    })
}

/// `tensor.empty`: a tensor of the result type whose elements are unspecified; dynamic dims
/// take the `index` operands in order.
pub fn empty(exec: &mut Exec, op: OperationRef<'_, '_>) -> Result<RtValue, InterpretError> {
    let (elem, dims) = exec.result_tensor_type(op, 0)?;
    let dynamic = dims.iter().filter(|d| d.is_none()).count();
    if op.operand_count() != dynamic {
        return Err(unsupported(
            op,
            format!("{} size operands for {dynamic} dynamic dims", op.operand_count()),
        ));
    }
    let mut next = 0;
    let mut shape = Vec::with_capacity(dims.len());
    for (i, d) in dims.iter().enumerate() {
        shape.push(match d {
            Some(d) => *d,
            None => {
                let size = exec.index_operand(op, next)?;
                next += 1;
                to_usize(size, format!("dynamic size of dim {i}")).map_err(|f| fault(op, f))?
            }
        });
    }
    let tensor = TensorValue::filled(shape, Scalar::Uninit(elem)).map_err(|f| fault(op, f))?;
    Ok(RtValue::tensor(tensor))
}

/// `tensor.dim`: the size of a dim, as an `index`.
pub fn dim(exec: &mut Exec, op: OperationRef<'_, '_>) -> Result<RtValue, InterpretError> {
    let tensor = exec.tensor_operand(op, 0)?;
    let index = exec.index_operand(op, 1)?;
    let size = usize::try_from(index)
        .ok()
        .and_then(|i| tensor.shape().get(i))
        .ok_or_else(|| {
            fault(
                op,
                Fault::IndexOutOfRange {
                    what: "dim index".into(),
                    index: vec![index],
                    shape: vec![tensor.shape().len()],
                },
            )
        })?;
    let size = i64::try_from(*size).map_err(|_| fault(op, Fault::Internal("size overflows i64".into())))?;
    Ok(RtValue::Scalar(Scalar::index(size)))
}

/// `tensor.extract`: one element; every index must be in range.
pub fn extract(exec: &mut Exec, op: OperationRef<'_, '_>) -> Result<RtValue, InterpretError> {
    let tensor = exec.tensor_operand(op, 0)?;
    let rank = tensor.shape().len();
    if op.operand_count() != rank + 1 {
        return Err(unsupported(
            op,
            format!("{} indices for a rank-{rank} tensor", op.operand_count() - 1),
        ));
    }
    let indices = (0..rank)
        .map(|i| exec.index_operand(op, i + 1))
        .collect::<Result<Vec<i64>, _>>()?;
    let position: Option<Vec<usize>> = indices.iter().map(|&i| usize::try_from(i).ok()).collect();
    let offset = position.and_then(|p| tensor.offset_of(&p)).ok_or_else(|| {
        fault(
            op,
            Fault::IndexOutOfRange {
                what: format!("extract from {}", tensor.type_name()),
                index: indices.clone(),
                shape: tensor.shape().to_vec(),
            },
        )
    })?;
    Ok(RtValue::Scalar(tensor.data()[offset]))
}

fn reassociation(op: OperationRef<'_, '_>) -> Result<Vec<Vec<usize>>, InterpretError> {
    attrs::reassociation(op).ok_or_else(|| unsupported(op, "attribute 'reassociation' is missing or malformed"))
}

/// `tensor.collapse_shape`: a row-major reshape merging each reassociation group of dims.
pub fn collapse_shape(exec: &mut Exec, op: OperationRef<'_, '_>) -> Result<RtValue, InterpretError> {
    let source = exec.tensor_operand(op, 0)?;
    let groups = reassociation(op)?;
    let rank = source.shape().len();
    let flat: Vec<usize> = groups.iter().flatten().copied().collect();
    // A collapse to rank 0 has no groups and drops unit dims only.
    let valid = if groups.is_empty() {
        source.shape().iter().all(|&d| d == 1)
    } else {
        flat == (0..rank).collect::<Vec<_>>()
    };
    if !valid {
        return Err(unsupported(
            op,
            format!("reassociation {groups:?} for source rank {rank}"),
        ));
    }
    let shape = groups
        .iter()
        .map(|group| {
            group
                .iter()
                .try_fold(1usize, |acc, &d| acc.checked_mul(source.shape()[d]))
        })
        .collect::<Option<Vec<usize>>>()
        .ok_or_else(|| {
            fault(
                op,
                Fault::TooLarge {
                    shape: source.shape().to_vec(),
                    limit: super::value::MAX_ELEMENTS,
                },
            )
        })?;
    let tensor = (*source).clone().reshaped(shape).map_err(|f| fault(op, f))?;
    Ok(RtValue::tensor(tensor))
}

/// `tensor.expand_shape`: a row-major reshape splitting each source dim into its group; the
/// result dims come from `static_output_shape` and, for dynamic entries, the operands.
pub fn expand_shape(exec: &mut Exec, op: OperationRef<'_, '_>) -> Result<RtValue, InterpretError> {
    let source = exec.tensor_operand(op, 0)?;
    let groups = reassociation(op)?;
    let static_shape = attrs::i64_array(op, "static_output_shape")
        .ok_or_else(|| unsupported(op, "attribute 'static_output_shape' is missing"))?;
    let mut next = 1;
    let mut shape = Vec::with_capacity(static_shape.len());
    for (i, &d) in static_shape.iter().enumerate() {
        let size = if d == DYNAMIC {
            let size = exec.index_operand(op, next)?;
            next += 1;
            size
        } else {
            d
        };
        shape.push(to_usize(size, format!("output dim {i}")).map_err(|f| fault(op, f))?);
    }
    if next != op.operand_count() {
        return Err(unsupported(
            op,
            format!(
                "{} output_shape operands for {} dynamic dims",
                op.operand_count() - 1,
                next - 1
            ),
        ));
    }
    if groups.len() != source.shape().len() {
        return Err(unsupported(
            op,
            format!("reassociation {groups:?} for source rank {}", source.shape().len()),
        ));
    }
    for (g, group) in groups.iter().enumerate() {
        let product = group
            .iter()
            .map(|&d| shape.get(d).copied())
            .try_fold(1usize, |acc, d| d.and_then(|d| acc.checked_mul(d)));
        if product != Some(source.shape()[g]) {
            return Err(fault(
                op,
                Fault::Shape {
                    what: format!("output dims {group:?}"),
                    expected: format!("a product of {} (source dim {g})", source.shape()[g]),
                    actual: format!("{:?}", group.iter().map(|&d| shape.get(d)).collect::<Vec<_>>()),
                },
            ));
        }
    }
    let tensor = (*source).clone().reshaped(shape).map_err(|f| fault(op, f))?;
    Ok(RtValue::tensor(tensor))
}

/// The static offsets, sizes and strides of a slice op; dynamic ones are refused.
struct Slice {
    offsets: Vec<i64>,
    sizes: Vec<i64>,
    strides: Vec<i64>,
}

impl Slice {
    fn of(op: OperationRef<'_, '_>, fixed_operands: usize) -> Result<Self, InterpretError> {
        let read = |name: &str| {
            let values =
                attrs::i64_array(op, name).ok_or_else(|| unsupported(op, format!("attribute '{name}' is missing")))?;
            if values.contains(&DYNAMIC) {
                return Err(unsupported(op, format!("dynamic entries in '{name}'")));
            }
            Ok(values)
        };
        let slice = Slice {
            offsets: read("static_offsets")?,
            sizes: read("static_sizes")?,
            strides: read("static_strides")?,
        };
        if op.operand_count() != fixed_operands {
            return Err(unsupported(op, "dynamic offsets, sizes or strides"));
        }
        Ok(slice)
    }

    /// The flat offsets inside a tensor of `shape` of every slice element, row-major, and the
    /// slice sizes.
    fn positions(&self, shape: &[usize]) -> Result<(Vec<usize>, Vec<usize>), Fault> {
        let rank = shape.len();
        if self.offsets.len() != rank || self.sizes.len() != rank || self.strides.len() != rank {
            return Err(Fault::Shape {
                what: "slice".into(),
                expected: format!("{rank} offsets, sizes and strides"),
                actual: format!(
                    "{}, {} and {}",
                    self.offsets.len(),
                    self.sizes.len(),
                    self.strides.len()
                ),
            });
        }
        let mut sizes = Vec::with_capacity(rank);
        for (dim, &extent) in shape.iter().enumerate() {
            let (offset, size, stride) = (self.offsets[dim], self.sizes[dim], self.strides[dim]);
            let out = || Fault::SliceOutOfBounds {
                dim,
                offset,
                size,
                stride,
                extent,
            };
            if offset < 0 || size < 0 || stride < 1 {
                return Err(out());
            }
            let last = if size == 0 {
                i128::from(offset) - 1
            } else {
                i128::from(offset) + i128::from(size - 1) * i128::from(stride)
            };
            if last >= extent as i128 {
                return Err(out());
            }
            sizes.push(size as usize);
        }
        let count = element_count(&sizes)?;
        let strides = super::value::strides(shape);
        let mut positions = Vec::with_capacity(count);
        let mut index = vec![0usize; rank];
        for _ in 0..count {
            let flat: usize = (0..rank)
                .map(|d| (self.offsets[d] as usize + index[d] * self.strides[d] as usize) * strides[d])
                .sum();
            positions.push(flat);
            for d in (0..rank).rev() {
                index[d] += 1;
                if index[d] < sizes[d] {
                    break;
                }
                index[d] = 0;
            }
        }
        Ok((positions, sizes))
    }
}

/// Whether `small` is `sizes` with some unit dims dropped (a rank-reducing slice).
fn rank_reduced_matches(small: &[usize], sizes: &[usize]) -> bool {
    let non_unit = |s: &[usize]| s.iter().copied().filter(|&d| d != 1).collect::<Vec<_>>();
    small.len() <= sizes.len()
        && non_unit(small) == non_unit(sizes)
        && small.iter().product::<usize>() == sizes.iter().product::<usize>()
}

/// `tensor.insert_slice` with static offsets, sizes and strides: the destination with the
/// source written over the slice.
pub fn insert_slice(exec: &mut Exec, op: OperationRef<'_, '_>) -> Result<RtValue, InterpretError> {
    let slice = Slice::of(op, 2)?;
    let source = exec.tensor_operand(op, 0)?;
    let dest = exec.tensor_operand(op, 1)?;
    let (positions, sizes) = slice.positions(dest.shape()).map_err(|f| fault(op, f))?;
    if source.elem() != dest.elem() || !rank_reduced_matches(source.shape(), &sizes) {
        return Err(fault(
            op,
            Fault::Shape {
                what: "source".into(),
                expected: format!("a {} slice of sizes {sizes:?}", dest.elem()),
                actual: source.type_name(),
            },
        ));
    }
    let mut result = (*dest).clone();
    let data = result.data_mut();
    for (&position, &value) in positions.iter().zip(source.data()) {
        data[position] = value;
    }
    Ok(RtValue::tensor(result))
}

/// `tensor.extract_slice` with static offsets, sizes and strides; the result shape is the
/// result type's (possibly rank-reduced).
pub fn extract_slice(exec: &mut Exec, op: OperationRef<'_, '_>) -> Result<RtValue, InterpretError> {
    let slice = Slice::of(op, 1)?;
    let source = exec.tensor_operand(op, 0)?;
    let (elem, dims) = exec.result_tensor_type(op, 0)?;
    let (positions, sizes) = slice.positions(source.shape()).map_err(|f| fault(op, f))?;
    let shape: Vec<usize> = dims
        .iter()
        .copied()
        .collect::<Option<Vec<usize>>>()
        .ok_or_else(|| unsupported(op, "a result type with dynamic dims"))?;
    if elem != source.elem() || !rank_reduced_matches(&shape, &sizes) {
        return Err(fault(
            op,
            Fault::Shape {
                what: "result".into(),
                expected: format!("a {} slice of sizes {sizes:?}", source.elem()),
                actual: format!("{shape:?} of {elem}"),
            },
        ));
    }
    let data = positions.iter().map(|&p| source.data()[p]).collect();
    let tensor = TensorValue::new(elem, shape, data).map_err(|f| fault(op, f))?;
    Ok(RtValue::tensor(tensor))
}
