//! The Rust schema (`dialect/src/schema.rs`) and the IRDL declaration
//! (`dialect/irdl/npu.irdl.mlir`) describe the same ops, operands, results and attributes.

use gmmfr_dialect::context::NPU_IRDL;
use gmmfr_dialect::schema::{ALL, Arity};

struct Declared {
    name: String,
    operands: Vec<(String, bool)>,
    results: Vec<String>,
    attributes: Vec<String>,
}

fn between<'a>(text: &'a str, open: &str, close: char) -> &'a str {
    let start = text.find(open).unwrap_or_else(|| panic!("no {open} in {text}")) + open.len();
    let end = text[start..].find(close).unwrap() + start;
    &text[start..end]
}

fn declared() -> Vec<Declared> {
    NPU_IRDL
        .split("irdl.operation @")
        .skip(1)
        .map(|body| {
            let name = format!("npu.{}", &body[..body.find(' ').unwrap()]);
            let operands = between(body, "irdl.operands(", ')')
                .split(',')
                .map(|item| {
                    let (name, constraint) = item.split_once(':').unwrap();
                    (name.trim().to_string(), constraint.trim().starts_with("optional"))
                })
                .collect();
            let results = between(body, "irdl.results(", ')')
                .split(',')
                .map(|i| i.split(':').next().unwrap().trim().to_string())
                .collect();
            let attributes = between(body, "irdl.attributes {", '}')
                .split(',')
                .map(|i| i.split('=').next().unwrap().trim().trim_matches('"').to_string())
                .collect();
            Declared {
                name,
                operands,
                results,
                attributes,
            }
        })
        .collect()
}

// Every op of the IRDL file has the same operands (names, order, optionality), results and
// required attributes as its Rust schema, and no op is declared in only one of them.
#[test]
fn irdl_and_rust_schema_agree() {
    let declared = declared();
    assert_eq!(declared.len(), ALL.len(), "op count differs");
    for op in &declared {
        let schema =
            gmmfr_dialect::schema::lookup(&op.name).unwrap_or_else(|| panic!("{} has no Rust schema", op.name));
        let rust: Vec<(String, bool)> = schema
            .operands
            .iter()
            .map(|o| (o.name.to_string(), o.arity == Arity::Optional))
            .collect();
        assert_eq!(op.operands, rust, "{} operands", op.name);
        let results: Vec<String> = schema.results.iter().map(|r| r.to_string()).collect();
        assert_eq!(op.results, results, "{} results", op.name);
        let attributes: Vec<String> = schema.required_attributes.iter().map(|a| a.to_string()).collect();
        assert_eq!(op.attributes, attributes, "{} attributes", op.name);
    }
}
