//! The bookkeeping shared by the op verifiers: symbolic dims bound once and checked everywhere
//! else, element type and rank checks, presence rules and attribute readers.

use super::violation::{Subject, Violation};
use crate::op_view::{AttrValue, NpuOp};
use crate::types::{Elem, TensorInfo};
use std::collections::HashMap;

/// Collects the violations of one op.
pub struct Checker<'v, 'c, 'a> {
    /// The op being checked.
    pub op: &'v NpuOp<'c, 'a>,
    /// What is wrong so far.
    pub violations: Vec<Violation>,
    dims: HashMap<String, (u64, String)>,
}

impl<'v, 'c, 'a> Checker<'v, 'c, 'a> {
    /// Starts checking an op.
    pub fn new(op: &'v NpuOp<'c, 'a>) -> Self {
        Self { op, violations: Vec::new(), dims: HashMap::new() }
    }

    /// Records a violation.
    pub fn report(&mut self, violation: Violation) {
        self.violations.push(violation);
    }

    /// The value bound to a symbol so far, if any operand fixed it statically.
    pub fn get(&self, symbol: &str) -> Option<u64> {
        self.dims.get(symbol).map(|(value, _)| *value)
    }

    /// Binds `symbol` to dim `index` of a tensor, or checks it against an earlier binding.
    /// Dynamic dims bind nothing and are never reported.
    pub fn bind(&mut self, symbol: &str, subject: Subject, info: &TensorInfo, index: usize) {
        let Some(actual) = info.dim(index) else { return };
        self.bind_value(symbol, subject, index, actual);
    }

    /// Binds or checks a symbol against a concrete value found at `subject` dim `index`.
    pub fn bind_value(&mut self, symbol: &str, subject: Subject, index: usize, actual: u64) {
        match self.dims.get(symbol) {
            None => {
                let source = match &subject {
                    Subject::Operand(name) => format!("{name} dim {index}"),
                    Subject::Result(name) => format!("result {name} dim {index}"),
                    Subject::Attribute(name) => format!("attribute {name}"),
                    Subject::Op => "op".to_string(),
                };
                self.dims.insert(symbol.to_string(), (actual, source));
            }
            Some((expected, source)) if *expected != actual => {
                let violation = Violation::Dim {
                    subject,
                    dim: index,
                    symbol: symbol.to_string(),
                    expected: *expected,
                    source_of: source.clone(),
                    actual,
                };
                self.report(violation);
            }
            Some(_) => {}
        }
    }

    /// Requires dim `index` to equal a value derived from other symbols (e.g. ceil(n/32)),
    /// described by `symbol` and `source`.
    pub fn expect_dim(&mut self, subject: Subject, info: &TensorInfo, index: usize, symbol: &str, expected: u64, source: String) {
        if let Some(actual) = info.dim(index)
            && actual != expected
        {
            self.report(Violation::Dim { subject, dim: index, symbol: symbol.to_string(), expected, source_of: source, actual });
        }
    }

    /// Checks element type and rank. Returns false (and reports) if either is wrong, so the
    /// caller skips the dim checks that would only repeat the error.
    pub fn shape(&mut self, subject: Subject, info: &TensorInfo, allowed: &[Elem], layout: &[&str]) -> bool {
        let mut ok = true;
        if !allowed.contains(&info.elem) {
            self.report(Violation::ElementType { subject: subject.clone(), expected: describe(allowed), actual: info.text.clone() });
            ok = false;
        }
        if info.rank() != layout.len() {
            self.report(Violation::Rank {
                subject,
                expected: layout.len(),
                layout: format!("({})", layout.join(", ")),
                actual: info.text.clone(),
            });
            ok = false;
        }
        ok
    }

    /// Checks an operand's type and binds each named dim of `layout`; literal numbers in the
    /// layout are fixed sizes and `_` is unconstrained. Returns the type if it is well formed.
    pub fn operand(&mut self, name: &'static str, allowed: &[Elem], layout: &[&str]) -> Option<TensorInfo> {
        let info = self.op.operand_info(name)?;
        self.bind_layout(Subject::Operand(name), info, allowed, layout)
    }

    /// Like [`Checker::operand`] for result `index`.
    pub fn result(&mut self, index: usize, allowed: &[Elem], layout: &[&str]) -> Option<TensorInfo> {
        let name = self.op.schema.results.get(index).copied().unwrap_or("result");
        let info = self.op.result_info(index)?;
        self.bind_layout(Subject::Result(name), info, allowed, layout)
    }

    fn bind_layout(&mut self, subject: Subject, info: TensorInfo, allowed: &[Elem], layout: &[&str]) -> Option<TensorInfo> {
        if !self.shape(subject.clone(), &info, allowed, layout) {
            return None;
        }
        for (index, symbol) in layout.iter().enumerate() {
            if *symbol == "_" {
                continue;
            }
            if let Ok(fixed) = symbol.parse::<u64>() {
                self.expect_dim(subject.clone(), &info, index, symbol, fixed, "the layout".to_string());
            } else {
                self.bind(symbol, subject.clone(), &info, index);
            }
        }
        Some(info)
    }

    /// Whether an operand is present.
    pub fn has(&self, name: &str) -> bool {
        self.op.operand(name).is_some()
    }

    /// Reports a missing operand.
    pub fn require(&mut self, name: &'static str, why: &str) {
        if !self.has(name) {
            self.report(Violation::Missing { subject: Subject::Operand(name), why: why.to_string() });
        }
    }

    /// Reports an operand that must be absent.
    pub fn forbid(&mut self, name: &'static str, why: &str) {
        if self.has(name) {
            self.report(Violation::Unexpected { subject: Subject::Operand(name), why: why.to_string() });
        }
    }

    /// Reads an integer attribute (any integer type); `None` (and a report when `required`) if
    /// it is absent or not an integer.
    pub fn int_attr(&mut self, name: &'static str, required: bool) -> Option<i64> {
        match self.op.attribute(name).map(AttrValue::of) {
            Some(AttrValue::Int { value, r#type }) if r#type == "i64" => Some(value),
            Some(other) => {
                self.report(Violation::AttributeKind {
                    subject: Subject::Attribute(name),
                    expected: "an i64 integer attribute".to_string(),
                    actual: render(&other),
                });
                None
            }
            None => {
                if required {
                    self.report(Violation::Missing { subject: Subject::Attribute(name), why: "on this op".to_string() });
                }
                None
            }
        }
    }

    /// Reads an integer attribute and checks it against `allowed`.
    pub fn int_attr_in(&mut self, name: &'static str, allowed: &[i64]) -> Option<i64> {
        let value = self.int_attr(name, true)?;
        if !allowed.contains(&value) {
            let allowed = allowed.iter().map(|v| v.to_string()).collect::<Vec<_>>();
            self.report(Violation::Range { subject: Subject::Attribute(name), allowed: one_of(&allowed), actual: value.to_string() });
            return None;
        }
        Some(value)
    }

    /// Reads a non-negative integer attribute.
    pub fn int_attr_non_negative(&mut self, name: &'static str) -> Option<i64> {
        let value = self.int_attr(name, true)?;
        if value < 0 {
            self.report(Violation::Range { subject: Subject::Attribute(name), allowed: ">= 0".to_string(), actual: value.to_string() });
            return None;
        }
        Some(value)
    }

    /// Reads an optional dense i64 array attribute.
    pub fn i64_array_attr(&mut self, name: &'static str) -> Option<Vec<i64>> {
        match self.op.attribute(name).map(AttrValue::of) {
            Some(AttrValue::I64Array(values)) => Some(values),
            Some(other) => {
                self.report(Violation::AttributeKind {
                    subject: Subject::Attribute(name),
                    expected: "a dense i64 array (array<i64: ...>)".to_string(),
                    actual: render(&other),
                });
                None
            }
            None => None,
        }
    }
}

fn render(value: &AttrValue) -> String {
    match value {
        AttrValue::Int { value, r#type } => format!("{value} : {type}"),
        AttrValue::Float { value, r#type } => format!("{value} : {type}"),
        AttrValue::I64Array(values) => format!("array<i64: {}>", values.iter().map(|v| v.to_string()).collect::<Vec<_>>().join(", ")),
        AttrValue::Other(text) => text.clone(),
    }
}

/// "a", "a or b", "a, b or c".
pub fn one_of(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} or {last}", init.join(", ")),
    }
}

fn describe(allowed: &[Elem]) -> String {
    one_of(&allowed.iter().map(|e| e.to_string()).collect::<Vec<_>>())
}
