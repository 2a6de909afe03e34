//! The IR the fusion creates from a [`Plan`]: gidx, row_index = gidx // K and
//! logit = scales.flatten()[gidx] as one `linalg.generic`, the NZ weight and counts group list
//! when needed, the fused op, and the cast back to the finalize op's element type.

use super::legality::{GidxSource, Plan};
use gmmfr_dialect::graph::{producer, users};
use gmmfr_dialect::schema;
use gmmfr_dialect::types::{Elem, TensorInfo};
use melior::ir::{
    Attribute, Block, BlockLike, Identifier, Location, Operation, OperationRef, Region, RegionLike, Type, Value,
    ValueLike,
    operation::{OperationBuilder, OperationLike},
};
use melior::{Context, RewriterBase};

/// Why the rewrite could not build its IR. Every such case is a bug (legality promised it), so
/// the pass reports it as an error rather than leaving half-built IR.
#[derive(Debug, thiserror::Error)]
#[error("fusion rewrite failed: {0}")]
pub struct MaterializeError(pub String);

fn fail(what: impl Into<String>) -> MaterializeError {
    MaterializeError(what.into())
}

struct Builder<'c> {
    context: &'c Context,
    location: Location<'c>,
}

impl<'c> Builder<'c> {
    fn r#type(&self, text: &str) -> Result<Type<'c>, MaterializeError> {
        Type::parse(self.context, text).ok_or_else(|| fail(format!("cannot build type {text}")))
    }

    fn attribute(&self, text: &str) -> Result<Attribute<'c>, MaterializeError> {
        Attribute::parse(self.context, text).ok_or_else(|| fail(format!("cannot build attribute {text}")))
    }

    fn named(&self, name: &str, text: &str) -> Result<(Identifier<'c>, Attribute<'c>), MaterializeError> {
        Ok((Identifier::new(self.context, name), self.attribute(text)?))
    }

    fn op(
        &self,
        name: &str,
        operands: &[Value<'c, '_>],
        results: &[Type<'c>],
        attributes: &[(Identifier<'c>, Attribute<'c>)],
    ) -> Result<Operation<'c>, MaterializeError> {
        OperationBuilder::new(name, self.location)
            .add_operands(operands)
            .add_results(results)
            .add_attributes(attributes)
            .build()
            .map_err(|e| fail(format!("cannot build {name}: {e}")))
    }

    fn constant(&self, value: &str, r#type: &str) -> Result<Operation<'c>, MaterializeError> {
        let ty = self.r#type(r#type)?;
        self.op(
            "arith.constant",
            &[],
            &[ty],
            &[self.named("value", &format!("{value} : {type}"))?],
        )
    }
}

fn tensor_type(dims: &[Option<u64>], elem: &str) -> String {
    let mut text = String::from("tensor<");
    for dim in dims {
        match dim {
            Some(d) => text.push_str(&format!("{d}x")),
            None => text.push_str("?x"),
        }
    }
    text.push_str(elem);
    text.push('>');
    text
}

fn info(value: Value<'_, '_>) -> Result<TensorInfo, MaterializeError> {
    TensorInfo::of(value.r#type()).ok_or_else(|| fail("operand is not a ranked tensor"))
}

fn result<'c, 'a>(op: OperationRef<'c, 'a>, index: usize) -> Result<Value<'c, 'a>, MaterializeError> {
    op.result(index)
        .map(Into::into)
        .map_err(|_| fail(format!("missing result #{index}")))
}

fn operand<'c, 'a>(op: OperationRef<'c, 'a>, name: &str) -> Result<Option<Value<'c, 'a>>, MaterializeError> {
    let view = gmmfr_dialect::op_view::NpuOp::new(op)
        .map_err(|e| fail(e.to_string()))?
        .ok_or_else(|| fail("not an npu op"))?;
    Ok(view.operand(name))
}

/// Builds the fused op for `plan` and replaces the finalize op with it (through `rewriter`, so
/// the greedy driver sees every change).
pub fn materialize<'c>(
    plan: &Plan<'c, '_>,
    rewriter: &RewriterBase<'c, '_>,
    context: &'c Context,
) -> Result<(), MaterializeError> {
    let b = Builder {
        context,
        location: plan.finalize.location(),
    };
    let gmm = plan.gmm;

    // gidx.
    let (gidx, old_routing) = match &plan.gidx {
        GidxSource::Existing(value, duplicate) => (*value, *duplicate),
        GidxSource::RetypeRouting(routing) => {
            rewriter.set_insertion_point_before(*routing);
            let mut attributes = Vec::new();
            for name in schema::MOE_INIT_ROUTING
                .required_attributes
                .iter()
                .chain(schema::MOE_INIT_ROUTING.optional_attributes)
            {
                if *name == "row_idx_type" {
                    attributes.push(b.named(name, "1 : i64")?);
                } else if let Ok(value) = routing.attribute(name) {
                    attributes.push((Identifier::new(context, name), value));
                }
            }
            let operands = [
                routing.operand(0).map_err(|_| fail("routing x"))?,
                routing.operand(1).map_err(|_| fail("routing expert_idx"))?,
            ];
            let types: Vec<Type<'c>> = (0..3)
                .map(|i| result(*routing, i).map(|v| v.r#type()))
                .collect::<Result<_, _>>()?;
            let new_routing = rewriter.insert(b.op(schema::MOE_INIT_ROUTING.name, &operands, &types, &attributes)?);
            for index in [0, 2] {
                rewriter.replace_all_uses_with(result(*routing, index)?, result(new_routing, index)?);
            }
            (result(new_routing, 1)?, Some(*routing))
        }
    };
    rewriter.set_insertion_point_before(plan.finalize);
    let gidx_info = info(gidx)?;
    let m = gidx_info.dim(0);
    let gidx_elem = gidx_info.elem.to_string();

    // row_index and logit in one linalg.generic over the permuted rows.
    let scales_flat = match plan.scales {
        Some(scales) => {
            let elem = info(scales)?.elem.to_string();
            let ty = b.r#type(&tensor_type(&[Some(plan.tokens * plan.top_k)], &elem))?;
            let op = rewriter.insert(b.op(
                "tensor.collapse_shape",
                &[scales],
                &[ty],
                &[b.named("reassociation", "[[0, 1]]")?],
            )?);
            Some((result(op, 0)?, elem))
        }
        None => None,
    };
    let mut outputs: Vec<String> = Vec::new();
    if plan.row_index.is_none() {
        outputs.push(gidx_elem.clone());
    }
    if scales_flat.is_some() {
        outputs.push("f32".to_string());
    }
    let mut computed = Vec::new();
    if !outputs.is_empty() {
        let size = match m {
            Some(_) => Vec::new(),
            None => {
                let zero = rewriter.insert(b.constant("0", "index")?);
                let index = b.r#type("index")?;
                let dim = rewriter.insert(b.op("tensor.dim", &[gidx, result(zero, 0)?], &[index], &[])?);
                vec![result(dim, 0)?]
            }
        };
        let mut inits = Vec::new();
        let mut types = Vec::new();
        for elem in &outputs {
            let ty = b.r#type(&tensor_type(&[m], elem))?;
            let empty = rewriter.insert(b.op("tensor.empty", &size, &[ty], &[])?);
            inits.push(result(empty, 0)?);
            types.push(ty);
        }
        let block_types: Vec<(Type<'c>, Location<'c>)> = std::iter::once(gidx_elem.as_str())
            .chain(outputs.iter().map(String::as_str))
            .map(|e| b.r#type(e).map(|t| (t, b.location)))
            .collect::<Result<_, _>>()?;
        let block = Block::new(&block_types);
        let g = block.argument(0).map_err(|_| fail("block argument"))?.into();
        let mut yielded = Vec::new();
        if plan.row_index.is_none() {
            let k = block.append_operation(b.constant(&plan.top_k.to_string(), &gidx_elem)?);
            let ty = b.r#type(&gidx_elem)?;
            let div = block.append_operation(b.op("arith.divsi", &[g, result(k, 0)?], &[ty], &[])?);
            yielded.push(result(div, 0)?);
        }
        if let Some((flat, elem)) = &scales_flat {
            let index = b.r#type("index")?;
            let i = block.append_operation(b.op("arith.index_cast", &[g], &[index], &[])?);
            let count = block.append_operation(b.constant(&(plan.tokens * plan.top_k).to_string(), "index")?);
            let i1 = b.r#type("i1")?;
            // Entries of gidx past the active rows may be -1 or garbage: clamp before reading, so
            // the gather never reads out of bounds (those rows are never used by the fused op).
            let in_range = block.append_operation(b.op(
                "arith.cmpi",
                &[result(i, 0)?, result(count, 0)?],
                &[i1],
                &[b.named("predicate", "6 : i64")?],
            )?);
            let zero = block.append_operation(b.constant("0", "index")?);
            let safe = block.append_operation(b.op(
                "arith.select",
                &[result(in_range, 0)?, result(i, 0)?, result(zero, 0)?],
                &[index],
                &[],
            )?);
            let elem_ty = b.r#type(elem)?;
            let value = block.append_operation(b.op("tensor.extract", &[*flat, result(safe, 0)?], &[elem_ty], &[])?);
            let mut logit = result(value, 0)?;
            if elem != "f32" {
                let f32 = b.r#type("f32")?;
                let ext = block.append_operation(b.op("arith.extf", &[logit], &[f32], &[])?);
                logit = result(ext, 0)?;
            }
            yielded.push(logit);
        }
        block.append_operation(b.op("linalg.yield", &yielded, &[], &[])?);
        let region = Region::new();
        region.append_block(block);
        let maps = vec!["affine_map<(d0) -> (d0)>"; outputs.len() + 1].join(", ");
        let mut operands = vec![gidx];
        operands.extend(inits);
        let generic = OperationBuilder::new("linalg.generic", b.location)
            .add_operands(&operands)
            .add_results(&types)
            .add_attributes(&[
                b.named("indexing_maps", &format!("[{maps}]"))?,
                b.named("iterator_types", "[#linalg.iterator_type<parallel>]")?,
                b.named("operandSegmentSizes", &format!("array<i32: 1, {}>", outputs.len()))?,
            ])
            .add_regions([region])
            .build()
            .map_err(|e| fail(format!("cannot build linalg.generic: {e}")))?;
        let generic = rewriter.insert(generic);
        for index in 0..outputs.len() {
            computed.push(result(generic, index)?);
        }
    }
    let mut computed = computed.into_iter();
    let row_index = match plan.row_index {
        Some(existing) => existing,
        None => computed.next().ok_or_else(|| fail("row_index not computed"))?,
    };
    let logit = if plan.scales.is_some() {
        Some(computed.next().ok_or_else(|| fail("logit not computed"))?)
    } else {
        None
    };

    // The weight in NZ layout.
    let weight = operand(gmm, "weight")?.ok_or_else(|| fail("grouped_matmul weight"))?;
    let weight = if plan.weight_to_nz {
        let w = info(weight)?;
        let dims = [
            w.dim(0),
            w.dim(2).map(|n| n.div_ceil(32)),
            w.dim(1).map(|k| k.div_ceil(16)),
            Some(16),
            Some(32),
        ];
        let ty = b.r#type(&tensor_type(&dims, "i8"))?;
        let cast = rewriter.insert(b.op(
            schema::FORMAT_CAST.name,
            &[weight],
            &[ty],
            &[b.named("acl_format", "29 : i64")?],
        )?);
        result(cast, 0)?
    } else {
        weight
    };

    // The group list, as counts when the target needs it.
    let group_list = operand(gmm, "group_list")?.ok_or_else(|| fail("grouped_matmul group_list"))?;
    let gmm_list_type = match gmm
        .attribute("group_list_type")
        .map(gmmfr_dialect::op_view::AttrValue::of)
    {
        Ok(gmmfr_dialect::op_view::AttrValue::Int { value, .. }) => value,
        _ => 0,
    };
    let (group_list, group_list_type) = if plan.group_list_to_counts {
        (cumsum_to_counts(&b, rewriter, group_list)?, 1)
    } else {
        (group_list, gmm_list_type)
    };

    // The fused op.
    let gmm_out = info(result(gmm, 0)?)?;
    let n = gmm_out.dim(1);
    let x = operand(gmm, "x")?.ok_or_else(|| fail("grouped_matmul x"))?;
    let float_bias = operand(gmm, "bias")?.filter(|bias| info(*bias).is_ok_and(|i| i.elem == Elem::F32));
    let shared = plan.shared.as_ref().map(|s| s.value);
    let present: [Option<Value<'c, '_>>; 10] = [
        Some(x),
        Some(weight),
        Some(group_list),
        operand(gmm, "scale")?,
        float_bias,
        None,
        operand(gmm, "per_token_scale")?,
        shared,
        logit,
        Some(row_index),
    ];
    let segments: Vec<&str> = present.iter().map(|v| if v.is_some() { "1" } else { "0" }).collect();
    let operands: Vec<Value<'c, '_>> = present.iter().flatten().copied().collect();
    let out_type = b.r#type(&tensor_type(&[Some(plan.tokens), n], "f32"))?;
    let offset = plan.shared.as_ref().map_or(0, |s| s.offset);
    let fused = rewriter.insert(b.op(
        schema::GMMFR.name,
        &operands,
        &[out_type],
        &[
            b.named("dtype", "0 : i64")?,
            b.named("shared_input_weight", "1.0 : f32")?,
            b.named("shared_input_offset", &format!("{offset} : i64"))?,
            b.named("output_bs", &format!("{} : i64", plan.tokens))?,
            b.named("group_list_type", &format!("{group_list_type} : i64"))?,
            b.named("operandSegmentSizes", &format!("array<i32: {}>", segments.join(", ")))?,
        ],
    )?);
    let mut value = result(fused, 0)?;
    let wide = value;
    let final_elem = info(result(plan.finalize, 0)?)?.elem;
    if final_elem != Elem::F32 {
        let ty = b.r#type(&tensor_type(&[Some(plan.tokens), n], &final_elem.to_string()))?;
        let cast = rewriter.insert(b.op("arith.truncf", &[value], &[ty], &[])?);
        value = result(cast, 0)?;
    }

    for user in &plan.widened_users {
        rewriter.replace_op_with_values(*user, &[wide]);
    }
    rewriter.replace_op_with_values(plan.finalize, &[value]);
    rewriter.erase_op(gmm);
    for op in plan.index_chain.iter().rev() {
        erase_if_dead(rewriter, *op);
    }
    if let Some(routing) = old_routing {
        // A duplicate of the existing routing: its expanded rows and counts are the existing one's.
        if let GidxSource::Existing(value, Some(_)) = &plan.gidx
            && let Some((existing, _)) = producer(*value)
        {
            for index in [0, 2] {
                rewriter.replace_all_uses_with(result(routing, index)?, result(existing, index)?);
            }
        }
        erase_if_dead(rewriter, routing);
    }
    Ok(())
}

fn erase_if_dead(rewriter: &RewriterBase<'_, '_>, op: OperationRef<'_, '_>) {
    let dead = (0..op.result_count()).all(|i| op.result(i).is_ok_and(|r| users(r.into()).is_empty()));
    if dead {
        rewriter.erase_op(op);
    }
}

/// counts[g] = cumsum[g] - cumsum[g - 1] (cumsum[-1] = 0), as a linalg.generic.
fn cumsum_to_counts<'c: 'r, 'r>(
    b: &Builder<'c>,
    rewriter: &'r RewriterBase<'c, '_>,
    cumsum: Value<'c, 'r>,
) -> Result<Value<'c, 'r>, MaterializeError> {
    let list = info(cumsum)?;
    let ty = b.r#type(&tensor_type(&list.dims, "i64"))?;
    let empty = rewriter.insert(b.op("tensor.empty", &[], &[ty], &[])?);
    let i64_ty = b.r#type("i64")?;
    let index = b.r#type("index")?;
    let i1 = b.r#type("i1")?;
    let block = Block::new(&[(i64_ty, b.location)]);
    let g = block.append_operation(b.op("linalg.index", &[], &[index], &[b.named("dim", "0 : i64")?])?);
    let zero = block.append_operation(b.constant("0", "index")?);
    let one = block.append_operation(b.constant("1", "index")?);
    let first = block.append_operation(b.op(
        "arith.cmpi",
        &[result(g, 0)?, result(zero, 0)?],
        &[i1],
        &[b.named("predicate", "0 : i64")?],
    )?);
    let before = block.append_operation(b.op("arith.subi", &[result(g, 0)?, result(one, 0)?], &[index], &[])?);
    let previous_index = block.append_operation(b.op(
        "arith.select",
        &[result(first, 0)?, result(zero, 0)?, result(before, 0)?],
        &[index],
        &[],
    )?);
    let current = block.append_operation(b.op("tensor.extract", &[cumsum, result(g, 0)?], &[i64_ty], &[])?);
    let previous =
        block.append_operation(b.op("tensor.extract", &[cumsum, result(previous_index, 0)?], &[i64_ty], &[])?);
    let zero_i64 = block.append_operation(b.constant("0", "i64")?);
    let previous = block.append_operation(b.op(
        "arith.select",
        &[result(first, 0)?, result(zero_i64, 0)?, result(previous, 0)?],
        &[i64_ty],
        &[],
    )?);
    let count = block.append_operation(b.op(
        "arith.subi",
        &[result(current, 0)?, result(previous, 0)?],
        &[i64_ty],
        &[],
    )?);
    block.append_operation(b.op("linalg.yield", &[result(count, 0)?], &[], &[])?);
    let region = Region::new();
    region.append_block(block);
    let generic = OperationBuilder::new("linalg.generic", b.location)
        .add_operands(&[result(empty, 0)?])
        .add_results(&[ty])
        .add_attributes(&[
            b.named("indexing_maps", "[affine_map<(d0) -> (d0)>]")?,
            b.named("iterator_types", "[#linalg.iterator_type<parallel>]")?,
            b.named("operandSegmentSizes", "array<i32: 0, 1>")?,
        ])
        .add_regions([region])
        .build()
        .map_err(|e| fail(format!("cannot build linalg.generic: {e}")))?;
    result(rewriter.insert(generic), 0)
}
