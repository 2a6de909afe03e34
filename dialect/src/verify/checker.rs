//! The bookkeeping shared by the op verifiers: symbolic dims bound once and checked everywhere
//! else, element type and rank checks, presence rules and attribute readers.

use super::violation::{Subject, Violation};
use crate::op_view::{AttrValue, NpuOp};
use crate::types::{Elem, TensorInfo};

/// One place a symbolic dim was read from.
struct Observation {
    value: u64,
    subject: Subject,
    dim: usize,
    source: String,
}

/// Collects the violations of one op.
///
/// Symbolic dims (m, k, n, e, ...) are observed wherever an operand fixes them; the value most
/// observations agree on wins (the first seen on a tie), and every observation that disagrees
/// is reported against it. Voting blames the one operand that is wrong rather than whichever
/// happened to be read first.
pub struct Checker<'v, 'c, 'a> {
    /// The op being checked.
    pub op: &'v NpuOp<'c, 'a>,
    /// What is wrong so far.
    pub violations: Vec<Violation>,
    observations: Vec<(String, Observation)>,
    hints: Vec<(String, Hint)>,
}

/// A predicate that votes for the values of a symbol it accepts.
type Hint = Box<dyn Fn(u64) -> bool>;

impl<'v, 'c, 'a> Checker<'v, 'c, 'a> {
    /// Starts checking an op.
    pub fn new(op: &'v NpuOp<'c, 'a>) -> Self {
        Self {
            op,
            violations: Vec::new(),
            observations: Vec::new(),
            hints: Vec::new(),
        }
    }

    /// Records a violation.
    pub fn report(&mut self, violation: Violation) {
        self.violations.push(violation);
    }

    fn winner(&self, symbol: &str) -> Option<&Observation> {
        let seen: Vec<&Observation> = self
            .observations
            .iter()
            .filter(|(s, _)| s == symbol)
            .map(|(_, o)| o)
            .collect();
        let mut best: Option<(&Observation, usize)> = None;
        for candidate in &seen {
            let hinted = self
                .hints
                .iter()
                .filter(|(s, agrees)| s == symbol && agrees(candidate.value))
                .count();
            let votes = seen.iter().filter(|o| o.value == candidate.value).count() + hinted;
            if best.is_none_or(|(_, most)| votes > most) {
                best = Some((candidate, votes));
            }
        }
        best.map(|(o, _)| o)
    }

    /// The value of a symbol as the operands seen so far decide it.
    pub fn get(&self, symbol: &str) -> Option<u64> {
        self.winner(symbol).map(|o| o.value)
    }

    /// Observes `symbol` at dim `index` of a tensor. Dynamic dims are not observations.
    pub fn bind(&mut self, symbol: &str, subject: Subject, info: &TensorInfo, index: usize) {
        let Some(actual) = info.dim(index) else { return };
        let source = match &subject {
            Subject::Operand(name) => format!("{name} dim {index}"),
            Subject::Result(name) => format!("result {name} dim {index}"),
            Subject::Attribute(name) => format!("attribute {name}"),
            Subject::Op => "the op".to_string(),
        };
        self.observe(symbol, subject, index, actual, source);
    }

    /// Observes a symbol's value from somewhere other than a tensor dim (an attribute, or a
    /// product of other symbols), with a description of where it comes from.
    pub fn observe(&mut self, symbol: &str, subject: Subject, dim: usize, value: u64, source: String) {
        self.observations.push((
            symbol.to_string(),
            Observation {
                value,
                subject,
                dim,
                source,
            },
        ));
    }

    /// A vote for every value of `symbol` that `agrees` accepts, from a fact that bounds the
    /// symbol without fixing it (an NZ block count n1 = ceil(n / 32)). Hints never report.
    pub fn hint(&mut self, symbol: &str, agrees: impl Fn(u64) -> bool + 'static) {
        self.hints.push((symbol.to_string(), Box::new(agrees)));
    }

    /// Reports every observation that disagrees with its symbol's winning value. Call once,
    /// after all observations.
    pub fn finish(&mut self) {
        let mut symbols: Vec<String> = Vec::new();
        for (symbol, _) in &self.observations {
            if !symbols.contains(symbol) {
                symbols.push(symbol.clone());
            }
        }
        let mut found = Vec::new();
        for symbol in symbols {
            let Some(winner) = self.winner(&symbol) else { continue };
            for (_, o) in self.observations.iter().filter(|(s, _)| *s == symbol) {
                if o.value != winner.value {
                    found.push(Violation::Dim {
                        subject: o.subject.clone(),
                        dim: o.dim,
                        symbol: symbol.clone(),
                        expected: winner.value,
                        source_of: winner.source.clone(),
                        actual: o.value,
                    });
                }
            }
        }
        self.violations.extend(found);
    }

    /// Requires dim `index` to equal a value derived from other symbols (e.g. ceil(n/32)),
    /// described by `symbol` and `source`.
    pub fn expect_dim(
        &mut self,
        subject: Subject,
        info: &TensorInfo,
        index: usize,
        symbol: &str,
        expected: u64,
        source: String,
    ) {
        if let Some(actual) = info.dim(index)
            && actual != expected
        {
            self.report(Violation::Dim {
                subject,
                dim: index,
                symbol: symbol.to_string(),
                expected,
                source_of: source,
                actual,
            });
        }
    }

    /// Checks element type and rank. Returns false (and reports) if either is wrong, so the
    /// caller skips the dim checks that would only repeat the error.
    pub fn shape(&mut self, subject: Subject, info: &TensorInfo, allowed: &[Elem], layout: &[&str]) -> bool {
        let mut ok = true;
        if !allowed.contains(&info.elem) {
            self.report(Violation::ElementType {
                subject: subject.clone(),
                expected: describe(allowed),
                actual: info.text.clone(),
            });
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

    fn bind_layout(
        &mut self,
        subject: Subject,
        info: TensorInfo,
        allowed: &[Elem],
        layout: &[&str],
    ) -> Option<TensorInfo> {
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
            self.report(Violation::Missing {
                subject: Subject::Operand(name),
                why: why.to_string(),
            });
        }
    }

    /// Reports an operand that must be absent.
    pub fn forbid(&mut self, name: &'static str, why: &str) {
        if self.has(name) {
            self.report(Violation::Unexpected {
                subject: Subject::Operand(name),
                why: why.to_string(),
            });
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
                    self.report(Violation::Missing {
                        subject: Subject::Attribute(name),
                        why: "on this op".to_string(),
                    });
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
            self.report(Violation::Range {
                subject: Subject::Attribute(name),
                allowed: one_of(&allowed),
                actual: value.to_string(),
            });
            return None;
        }
        Some(value)
    }

    /// Reads a non-negative integer attribute.
    pub fn int_attr_non_negative(&mut self, name: &'static str) -> Option<i64> {
        let value = self.int_attr(name, true)?;
        if value < 0 {
            self.report(Violation::Range {
                subject: Subject::Attribute(name),
                allowed: ">= 0".to_string(),
                actual: value.to_string(),
            });
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

/// An attribute value as MLIR would print it.
pub fn render(value: &AttrValue) -> String {
    match value {
        AttrValue::Int { value, r#type } => format!("{value} : {type}"),
        AttrValue::Float { value, r#type } => format!("{value} : {type}"),
        AttrValue::I64Array(values) => format!(
            "array<i64: {}>",
            values.iter().map(|v| v.to_string()).collect::<Vec<_>>().join(", ")
        ),
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
    let mut names: Vec<String> = Vec::new();
    for elem in allowed {
        let name = elem.to_string();
        if !names.contains(&name) {
            names.push(name);
        }
    }
    one_of(&names)
}
