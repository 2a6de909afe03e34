//! What a torch-mlir operand is when it is not a tensor: the constants and lists the FX importer
//! materializes as `torch.constant.*` and `torch.prim.ListConstruct` ops.

use gmmfr_dialect::graph::producer;
use melior::ir::{Value, ValueLike, attribute::IntegerAttribute, operation::OperationLike};

/// A torch operand, as far as it is known at compile time.
#[derive(Clone, Debug)]
pub enum TorchValue<'c, 'a> {
    /// `torch.constant.none`.
    None,
    /// `torch.constant.int`.
    Int(i64),
    /// `torch.constant.float`.
    Float(f64),
    /// `torch.constant.bool`.
    Bool(bool),
    /// `torch.constant.str`.
    Str(String),
    /// `torch.prim.ListConstruct`: its elements.
    List(Vec<Value<'c, 'a>>),
    /// Anything else: a tensor, a device, a value computed at run time.
    Other(Value<'c, 'a>),
}

impl<'c: 'a, 'a> TorchValue<'c, 'a> {
    /// Reads `value` through its defining op.
    pub fn of(value: Value<'c, 'a>) -> Self {
        let Some((op, _)) = producer(value) else {
            return TorchValue::Other(value);
        };
        let name = op.name().as_string_ref().as_str().unwrap_or("").to_string();
        let attribute = op.attribute("value").ok();
        match name.as_str() {
            "torch.constant.none" => TorchValue::None,
            "torch.constant.int" => attribute
                .and_then(|a| IntegerAttribute::try_from(a).ok())
                .map(|a| TorchValue::Int(a.value()))
                .unwrap_or(TorchValue::Other(value)),
            "torch.constant.float" => attribute
                .and_then(|a| a.to_string().split(':').next().and_then(|t| t.trim().parse::<f64>().ok()))
                .map(TorchValue::Float)
                .unwrap_or(TorchValue::Other(value)),
            "torch.constant.bool" => match attribute.map(|a| a.to_string()) {
                Some(text) if text == "true" => TorchValue::Bool(true),
                Some(text) if text == "false" => TorchValue::Bool(false),
                _ => TorchValue::Other(value),
            },
            "torch.constant.str" => attribute
                .map(|a| a.to_string().trim_matches('"').to_string())
                .map(TorchValue::Str)
                .unwrap_or(TorchValue::Other(value)),
            "torch.prim.ListConstruct" => {
                TorchValue::List((0..op.operand_count()).filter_map(|i| op.operand(i).ok()).collect())
            }
            _ => TorchValue::Other(value),
        }
    }

    /// The integer, if this is a known one.
    pub fn int(&self) -> Option<i64> {
        match self {
            TorchValue::Int(v) => Some(*v),
            _ => None,
        }
    }

    /// A list of known integers (`int[]`).
    pub fn ints(&self) -> Option<Vec<i64>> {
        match self {
            TorchValue::List(items) => items.iter().map(|v| TorchValue::of(*v).int()).collect(),
            _ => None,
        }
    }

    /// Whether this is `None`.
    pub fn is_none(&self) -> bool {
        matches!(self, TorchValue::None)
    }

    /// The tensor value, if this operand is one (a builtin tensor after retyping).
    pub fn tensor(&self) -> Option<Value<'c, 'a>> {
        match self {
            TorchValue::Other(v) if v.r#type().to_string().starts_with("tensor<") => Some(*v),
            _ => None,
        }
    }
}

/// The name of a torch op as a model spells it: ops the FX importer has no definition for are
/// `torch.operator` with the real name in its `name` attribute.
pub fn torch_op_name(op: &melior::ir::OperationRef<'_, '_>) -> String {
    let name = op.name().as_string_ref().as_str().unwrap_or("").to_string();
    if name == "torch.operator" {
        if let Ok(attribute) = op.attribute("name") {
            return attribute.to_string().trim_matches('"').to_string();
        }
    }
    name
}
