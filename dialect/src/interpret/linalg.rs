//! `linalg` ops on tensors: `generic` (all-parallel, projected-permutation maps), `fill` and
//! `transpose`.
//!
//! A `generic` or `fill` is evaluated point by point, in row-major order of its loops (loop 0
//! outermost): the body's block arguments are bound to the input elements and the current output
//! elements at that point, its ops are evaluated, and `linalg.yield` writes the outputs.

use super::attrs;
use super::error::{Fault, InterpretError};
use super::exec::{Exec, OpKind, fault, kind_of, unsupported};
use super::value::{RtValue, Scalar, TensorValue, element_count, strides, unravel};
use melior::ir::{BlockRef, OperationRef, RegionLike, block::BlockLike, operation::OperationLike};
use std::rc::Rc;

const PARALLEL: &str = "#linalg.iterator_type<parallel>";

/// An operand of a loop nest: its value and, for a tensor, the loop indexing each of its dims.
struct Access {
    value: RtValue,
    loops: Vec<usize>,
}

/// An output of a loop nest: the tensor being written and the loop indexing each of its dims.
struct Output {
    tensor: TensorValue,
    loops: Vec<usize>,
    strides: Vec<usize>,
}

/// The flat offset of the element `loops` selects at `point`.
fn offset_at(loops: &[usize], strides: &[usize], point: &[usize]) -> usize {
    loops.iter().zip(strides).map(|(&l, &s)| point[l] * s).sum()
}

/// Adds the iteration point to a fault raised by a body op.
fn at_point(error: InterpretError, point: &[usize]) -> InterpretError {
    match error {
        InterpretError::Fault { op, location, fault } => InterpretError::Fault {
            op,
            location,
            fault: Box::new(Fault::At {
                index: point.to_vec(),
                source: fault,
            }),
        },
        other => other,
    }
}

/// The single block of region 0 of `op`, with its ops checked against the body allowlist and
/// ending in `linalg.yield`.
fn body<'c, 'a>(
    op: OperationRef<'c, 'a>,
    arguments: usize,
) -> Result<(BlockRef<'c, 'a>, Vec<(OperationRef<'c, 'a>, OpKind)>), InterpretError> {
    let region = op.region(0).map_err(|_| unsupported(op, "the op has no body region"))?;
    let block = region
        .first_block()
        .ok_or_else(|| unsupported(op, "the body region is empty"))?;
    if block.next_in_region().is_some() {
        return Err(unsupported(op, "a body with more than one block"));
    }
    if block.argument_count() != arguments {
        return Err(unsupported(
            op,
            format!(
                "the body takes {} arguments for {arguments} operands",
                block.argument_count()
            ),
        ));
    }
    let mut steps = Vec::new();
    let mut next = block.first_operation();
    while let Some(body_op) = next {
        let kind = kind_of(body_op)?;
        if !kind.allowed_in_body() {
            return Err(unsupported(
                body_op,
                "only arith scalar ops, arith.constant, tensor.extract, linalg.index and linalg.yield are allowed in a linalg body",
            ));
        }
        steps.push((body_op, kind));
        next = body_op.next_in_block();
    }
    match steps.last() {
        Some((_, OpKind::Yield)) => Ok((block, steps)),
        _ => Err(unsupported(op, "the body does not end in linalg.yield")),
    }
}

/// Runs a body over every point of the loop nest of `bounds`.
fn run_parallel(
    exec: &mut Exec,
    op: OperationRef<'_, '_>,
    bounds: &[usize],
    inputs: &[Access],
    mut outputs: Vec<Output>,
) -> Result<Vec<TensorValue>, InterpretError> {
    let (block, steps) = body(op, inputs.len() + outputs.len())?;
    let input_strides: Vec<Vec<usize>> = inputs
        .iter()
        .map(|a| match &a.value {
            RtValue::Tensor(t) => strides(t.shape()),
            RtValue::Scalar(_) => Vec::new(),
        })
        .collect();
    let points = element_count(bounds).map_err(|f| fault(op, f))?;
    let mut arguments = Vec::with_capacity(inputs.len() + outputs.len());
    for argument in 0..block.argument_count() {
        arguments.push(
            block
                .argument(argument)
                .map_err(|_| unsupported(op, format!("body argument #{argument} is missing")))?,
        );
    }
    for flat in 0..points {
        let point = unravel(flat, bounds);
        for (i, access) in inputs.iter().enumerate() {
            let value = match &access.value {
                RtValue::Scalar(s) => RtValue::Scalar(*s),
                RtValue::Tensor(t) => RtValue::Scalar(t.data()[offset_at(&access.loops, &input_strides[i], &point)]),
            };
            exec.bind(arguments[i], value);
        }
        for (o, output) in outputs.iter().enumerate() {
            let element = output.tensor.data()[offset_at(&output.loops, &output.strides, &point)];
            exec.bind(arguments[inputs.len() + o], RtValue::Scalar(element));
        }
        for &(body_op, kind) in &steps {
            match kind {
                OpKind::Index => exec.run_index(body_op, &point),
                OpKind::Yield => yield_point(exec, body_op, &mut outputs, &point),
                _ => exec.run_op(body_op, kind),
            }
            .map_err(|e| at_point(e, &point))?;
        }
    }
    Ok(outputs.into_iter().map(|o| o.tensor).collect())
}

/// Writes the operands of `linalg.yield` into the outputs at `point`.
fn yield_point(
    exec: &mut Exec,
    op: OperationRef<'_, '_>,
    outputs: &mut [Output],
    point: &[usize],
) -> Result<(), InterpretError> {
    if op.operand_count() != outputs.len() {
        return Err(unsupported(
            op,
            format!("yields {} values for {} outputs", op.operand_count(), outputs.len()),
        ));
    }
    for (o, output) in outputs.iter_mut().enumerate() {
        let value = match exec.operand(op, o)? {
            RtValue::Scalar(s) if s.elem() == output.tensor.elem() => s,
            other => {
                return Err(fault(
                    op,
                    Fault::Type {
                        what: format!("yielded value #{o}"),
                        expected: output.tensor.elem().to_string(),
                        actual: other.type_name(),
                    },
                ));
            }
        };
        let offset = offset_at(&output.loops, &output.strides, point);
        output.tensor.data_mut()[offset] = value;
    }
    Ok(())
}

/// The extent of every loop, from the operands whose maps use it; they must agree.
fn loop_bounds(
    op: OperationRef<'_, '_>,
    loops: usize,
    accesses: &[(&[usize], &[usize])],
) -> Result<Vec<usize>, InterpretError> {
    let mut bounds: Vec<Option<usize>> = vec![None; loops];
    for (operand, (shape, dims)) in accesses.iter().enumerate() {
        for (&extent, &l) in shape.iter().zip(dims.iter()) {
            match bounds[l] {
                None => bounds[l] = Some(extent),
                Some(bound) if bound != extent => {
                    return Err(fault(
                        op,
                        Fault::Shape {
                            what: format!("operand #{operand}"),
                            expected: format!("extent {bound} for loop d{l} (from an earlier operand)"),
                            actual: format!("shape {shape:?}"),
                        },
                    ));
                }
                Some(_) => {}
            }
        }
    }
    bounds
        .iter()
        .enumerate()
        .map(|(l, b)| {
            b.ok_or_else(|| unsupported(op, format!("loop d{l} indexes no operand, so its extent is unknown")))
        })
        .collect()
}

/// `linalg.generic` with all-parallel iterators and projected-permutation indexing maps
/// (permutations for the outputs), on tensors; scalar inputs use maps with no results.
pub fn generic(exec: &mut Exec, op: OperationRef<'_, '_>) -> Result<Vec<RtValue>, InterpretError> {
    let segments = attrs::i32_array(op, "operandSegmentSizes")
        .ok_or_else(|| unsupported(op, "attribute 'operandSegmentSizes' is missing"))?;
    let [num_inputs, num_outputs] = segments.as_slice() else {
        return Err(unsupported(op, format!("operandSegmentSizes {segments:?}")));
    };
    let (num_inputs, num_outputs) = (
        usize::try_from(*num_inputs).map_err(|_| unsupported(op, "negative segment size"))?,
        usize::try_from(*num_outputs).map_err(|_| unsupported(op, "negative segment size"))?,
    );
    if num_inputs + num_outputs != op.operand_count() || op.result_count() != num_outputs {
        return Err(unsupported(
            op,
            "outputs that are not tensors (a generic on memrefs has no results)",
        ));
    }
    let maps =
        attrs::array(op, "indexing_maps").ok_or_else(|| unsupported(op, "attribute 'indexing_maps' is missing"))?;
    if maps.len() != op.operand_count() {
        return Err(unsupported(
            op,
            format!("{} indexing maps for {} operands", maps.len(), op.operand_count()),
        ));
    }
    let iterators =
        attrs::array(op, "iterator_types").ok_or_else(|| unsupported(op, "attribute 'iterator_types' is missing"))?;
    if let Some(other) = iterators.iter().find(|t| t.to_string() != PARALLEL) {
        return Err(unsupported(
            op,
            format!("iterator type {other}: only all-parallel generics are supported"),
        ));
    }
    let loops = iterators.len();
    let mut dims_of = Vec::with_capacity(maps.len());
    for (operand, attribute) in maps.iter().enumerate() {
        let map = attrs::affine_map(*attribute)
            .ok_or_else(|| unsupported(op, format!("indexing map #{operand} is not an affine map")))?;
        let is_output = operand >= num_inputs;
        let shape_ok = if is_output {
            map.is_permutation()
        } else {
            map.is_projected_permutation()
        };
        if map.dim_count() != loops || map.symbol_count() != 0 || !shape_ok {
            return Err(unsupported(
                op,
                format!(
                    "indexing map #{operand} {map}: input maps must be projected permutations and output maps permutations of the {loops} loops, without symbols"
                ),
            ));
        }
        let mut dims = Vec::with_capacity(map.result_count());
        for r in 0..map.result_count() {
            match map.result(r) {
                Ok(expr) if expr.is_dim() => dims.push(expr.dim_position()),
                _ => return Err(unsupported(op, format!("indexing map #{operand} {map}"))),
            }
        }
        dims_of.push(dims);
    }
    let operands = exec.operands(op)?;
    let mut shapes: Vec<Vec<usize>> = Vec::with_capacity(operands.len());
    for (i, (value, dims)) in operands.iter().zip(&dims_of).enumerate() {
        let shape = match value {
            RtValue::Tensor(t) => t.shape().to_vec(),
            RtValue::Scalar(_) if i < num_inputs => Vec::new(),
            RtValue::Scalar(s) => {
                return Err(unsupported(
                    op,
                    format!("output #{} is a scalar of {}", i - num_inputs, s.elem()),
                ));
            }
        };
        if shape.len() != dims.len() {
            return Err(unsupported(
                op,
                format!(
                    "operand #{i} has rank {} but its indexing map has {} results",
                    shape.len(),
                    dims.len()
                ),
            ));
        }
        shapes.push(shape);
    }
    let accesses: Vec<(&[usize], &[usize])> = shapes
        .iter()
        .zip(&dims_of)
        .map(|(s, d)| (s.as_slice(), d.as_slice()))
        .collect();
    let bounds = loop_bounds(op, loops, &accesses)?;
    let mut inputs = Vec::with_capacity(num_inputs);
    let mut outputs = Vec::with_capacity(num_outputs);
    for (i, (value, dims)) in operands.into_iter().zip(dims_of).enumerate() {
        if i < num_inputs {
            inputs.push(Access { value, loops: dims });
        } else if let RtValue::Tensor(t) = value {
            let tensor = Rc::unwrap_or_clone(t);
            let strides = strides(tensor.shape());
            outputs.push(Output {
                tensor,
                loops: dims,
                strides,
            });
        }
    }
    let results = run_parallel(exec, op, &bounds, &inputs, outputs)?;
    Ok(results.into_iter().map(RtValue::tensor).collect())
}

/// `linalg.fill`: every element of the output is the body's result for the scalar input
/// (the body holds any cast to the output element type).
pub fn fill(exec: &mut Exec, op: OperationRef<'_, '_>) -> Result<RtValue, InterpretError> {
    if op.operand_count() != 2 {
        return Err(unsupported(
            op,
            format!("{} operands, expected a value and an output", op.operand_count()),
        ));
    }
    let value = match exec.operand(op, 0)? {
        RtValue::Scalar(s) => s,
        RtValue::Tensor(t) => {
            return Err(unsupported(op, format!("a fill value of type {}", t.type_name())));
        }
    };
    let tensor = Rc::unwrap_or_clone(exec.tensor_operand(op, 1)?);
    let rank = tensor.shape().len();
    let bounds = tensor.shape().to_vec();
    let strides = strides(&bounds);
    let output = Output {
        tensor,
        loops: (0..rank).collect(),
        strides,
    };
    let input = Access {
        value: RtValue::Scalar(value),
        loops: Vec::new(),
    };
    let mut results = run_parallel(exec, op, &bounds, &[input], vec![output])?;
    let result = results
        .pop()
        .ok_or_else(|| fault(op, Fault::Internal("fill produced no result".into())))?;
    Ok(RtValue::tensor(result))
}

/// `linalg.transpose`: `result[i_0, ..., i_r] = input[j]` with `j[permutation[d]] = i_d`.
pub fn transpose(exec: &mut Exec, op: OperationRef<'_, '_>) -> Result<RtValue, InterpretError> {
    let input = exec.tensor_operand(op, 0)?;
    let init = exec.tensor_operand(op, 1)?;
    let permutation =
        attrs::i64_array(op, "permutation").ok_or_else(|| unsupported(op, "attribute 'permutation' is missing"))?;
    let rank = input.shape().len();
    let mut seen = vec![false; rank];
    let mut perm = Vec::with_capacity(rank);
    for &p in &permutation {
        match usize::try_from(p).ok().filter(|&p| p < rank && !seen[p]) {
            Some(p) => {
                seen[p] = true;
                perm.push(p);
            }
            None => return Err(unsupported(op, format!("permutation {permutation:?} of rank {rank}"))),
        }
    }
    if perm.len() != rank {
        return Err(unsupported(op, format!("permutation {permutation:?} of rank {rank}")));
    }
    let shape: Vec<usize> = perm.iter().map(|&p| input.shape()[p]).collect();
    if init.shape() != shape.as_slice() || init.elem() != input.elem() {
        return Err(fault(
            op,
            Fault::Shape {
                what: "init".into(),
                expected: super::value::tensor_type_name(input.elem(), &shape),
                actual: init.type_name(),
            },
        ));
    }
    let input_strides = strides(input.shape());
    let count = element_count(&shape).map_err(|f| fault(op, f))?;
    let data: Vec<Scalar> = (0..count)
        .map(|flat| {
            let index = unravel(flat, &shape);
            let source: usize = index.iter().zip(&perm).map(|(&i, &p)| i * input_strides[p]).sum();
            input.data()[source]
        })
        .collect();
    let tensor = TensorValue::new(input.elem(), shape, data).map_err(|f| fault(op, f))?;
    Ok(RtValue::tensor(tensor))
}
