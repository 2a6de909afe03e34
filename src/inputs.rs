//! Random arguments for a function, valid for the roles its arguments play: expert ids in
//! range for a routing, group lists that partition at most m rows for a grouped matmul (one
//! time in two fewer, as on an expert-parallel shard), permutations for finalize's index map,
//! and uniform values otherwise. Used by `gmmfr run --random-inputs` and the differential tests.

use gmmfr_dialect::graph::users;
use gmmfr_dialect::op_view::{AttrValue, NpuOp};
use gmmfr_dialect::tensor::Tensor;
use gmmfr_dialect::types::{Elem, TensorInfo};
use melior::ir::{
    BlockLike, Module, RegionLike, Value, ValueLike,
    attribute::StringAttribute,
    operation::{OperationLike, WalkOrder, WalkResult},
};

/// A small deterministic generator (xorshift64*).
pub struct Rng(pub u64);

impl Rng {
    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next_u64() % n }
    }
    fn unit(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
    }
    fn permutation(&mut self, n: usize) -> Vec<usize> {
        let mut p: Vec<usize> = (0..n).collect();
        for i in (1..n).rev() {
            p.swap(i, self.below(i as u64 + 1) as usize);
        }
        p
    }
}

/// What an argument is used as, which decides how its random values must look.
enum Role {
    ExpertIds(u64),
    GroupList { groups: usize, rows: u64, list_type: i64 },
    Permutation,
    Plain,
}

fn int_attr(op: &NpuOp<'_, '_>, name: &str) -> i64 {
    match op.attribute(name).map(AttrValue::of) {
        Some(AttrValue::Int { value, .. }) => value,
        _ => 0,
    }
}

fn role(argument: Value<'_, '_>) -> Role {
    for user in users(argument) {
        let Ok(Some(op)) = NpuOp::new(user) else { continue };
        let is = |name: &str| {
            op.operand(name)
                .is_some_and(|v| v.to_raw().ptr == argument.to_raw().ptr)
        };
        match op.name() {
            "npu.moe_init_routing" if is("expert_idx") => return Role::ExpertIds(int_attr(&op, "expert_num") as u64),
            "npu.grouped_matmul" if is("group_list") => {
                let groups = TensorInfo::of(argument.r#type()).and_then(|i| i.dim(0)).unwrap_or(0) as usize;
                let rows = op.operand_info("x").and_then(|x| x.dim(0)).unwrap_or(0);
                return Role::GroupList {
                    groups,
                    rows,
                    list_type: int_attr(&op, "group_list_type"),
                };
            }
            "npu.moe_finalize_routing" if is("expanded_src_to_dst_row") => return Role::Permutation,
            "npu.moe_finalize_routing" if is("expert_for_source_row") => {
                let experts = op.operand_info("bias").and_then(|b| b.dim(0)).unwrap_or(1);
                return Role::ExpertIds(experts);
            }
            _ => {}
        }
    }
    Role::Plain
}

fn random_tensor(info: &TensorInfo, role: &Role, rng: &mut Rng) -> Result<Tensor, String> {
    let shape: Vec<usize> = info
        .dims
        .iter()
        .map(|d| {
            d.map(|d| d as usize)
                .ok_or_else(|| format!("argument of type {} has a dynamic shape", info.text))
        })
        .collect::<Result<_, _>>()?;
    let count: usize = shape.iter().product();
    let tensor = match (role, &info.elem) {
        (Role::ExpertIds(n), Elem::I32) => {
            Tensor::from_i32(shape, (0..count).map(|_| rng.below(*n) as i32).collect()).map_err(|e| e.to_string())?
        }
        (
            Role::GroupList {
                groups,
                rows,
                list_type,
            },
            Elem::I64,
        ) => {
            // Active rows: all of m, or (one time in two) fewer, as on an expert-parallel shard.
            let active = if rng.below(2) == 0 { *rows } else { rng.below(*rows + 1) };
            let mut counts = vec![0i64; *groups];
            for _ in 0..active {
                counts[rng.below(*groups as u64) as usize] += 1;
            }
            match list_type {
                0 => {
                    let mut total = 0;
                    for c in counts.iter_mut() {
                        total += *c;
                        *c = total;
                    }
                }
                2 => {
                    // (group index, size) pairs: group g takes counts[g] rows.
                    counts = counts.iter().enumerate().flat_map(|(g, c)| [g as i64, *c]).collect();
                }
                _ => {}
            }
            Tensor::from_i64(shape, counts).map_err(|e| e.to_string())?
        }
        (Role::Permutation, Elem::I32) => {
            Tensor::from_i32(shape, rng.permutation(count).into_iter().map(|v| v as i32).collect())
                .map_err(|e| e.to_string())?
        }
        (_, Elem::I8) => Tensor::from_i8(shape, (0..count).map(|_| rng.below(256) as i64 as i8).collect())
            .map_err(|e| e.to_string())?,
        (_, Elem::I4) => {
            Tensor::from_i4(shape, (0..count).map(|_| rng.below(16) as i8 - 8).collect()).map_err(|e| e.to_string())?
        }
        (_, Elem::I32) => {
            Tensor::from_i32(shape, (0..count).map(|_| rng.below(4) as i32).collect()).map_err(|e| e.to_string())?
        }
        (_, Elem::I64) => {
            Tensor::from_i64(shape, (0..count).map(|_| rng.below(4) as i64).collect()).map_err(|e| e.to_string())?
        }
        (_, Elem::F32) => {
            Tensor::from_f32(shape, (0..count).map(|_| rng.unit()).collect()).map_err(|e| e.to_string())?
        }
        (_, Elem::BF16) => Tensor::from_bf16(shape, (0..count).map(|_| half::bf16::from_f32(rng.unit())).collect())
            .map_err(|e| e.to_string())?,
        (_, Elem::F16) => Tensor::from_f16(shape, (0..count).map(|_| half::f16::from_f32(rng.unit())).collect())
            .map_err(|e| e.to_string())?,
        (_, other) => return Err(format!("no random values for element type {other}")),
    };
    Ok(tensor)
}

/// Every function of the module with random arguments for it (seeded, deterministic).
pub fn functions_with_inputs(module: &Module<'_>, seed: u64) -> Result<Vec<(String, Vec<Tensor>)>, String> {
    // Collect inside the walk (a panic there would cross MLIR's C frames), generate outside.
    let mut signatures = Vec::new();
    module.as_operation().walk(WalkOrder::PreOrder, |op| {
        if op.name().as_string_ref().as_str() == Ok("func.func") {
            let name = op
                .attribute("sym_name")
                .ok()
                .and_then(|a| StringAttribute::try_from(a).ok())
                .map(|s| s.value().to_string());
            let arguments = op.region(0).ok().and_then(|r| r.first_block()).map(|block| {
                (0..block.argument_count())
                    .filter_map(|i| block.argument(i).ok())
                    .map(|a| {
                        let argument: Value = a.into();
                        (TensorInfo::of(argument.r#type()), role(argument))
                    })
                    .collect::<Vec<_>>()
            });
            signatures.push((name, arguments));
        }
        WalkResult::Advance
    });
    let mut rng = Rng(seed);
    signatures
        .into_iter()
        .map(|(name, arguments)| {
            let name = name.ok_or("a function without a name")?;
            let args = arguments
                .ok_or_else(|| format!("@{name} has no body"))?
                .iter()
                .map(|(info, role)| {
                    random_tensor(
                        info.as_ref()
                            .ok_or_else(|| format!("@{name} takes a non-tensor argument"))?,
                        role,
                        &mut rng,
                    )
                })
                .collect::<Result<Vec<_>, _>>()?;
            Ok((name, args))
        })
        .collect()
}

/// Random arguments for function `name`.
pub fn for_function(module: &Module<'_>, name: &str, seed: u64) -> Result<Vec<Tensor>, String> {
    functions_with_inputs(module, seed)?
        .into_iter()
        .find(|(n, _)| n == name)
        .map(|(_, args)| args)
        .ok_or_else(|| format!("no function @{name} in the module"))
}
