//! Round-trip tests: every fixture under `tests/fixtures/roundtrip/` (each op in each scenario)
//! parses, passes both verifiers, prints as its snapshot, and re-parses to the same text.

use gmmfr::{Compiler, print_module};
use std::path::Path;

fn roundtrip(name: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/roundtrip")
        .join(name);
    let compiler = Compiler::new().unwrap();
    let module = compiler
        .load_file(&path)
        .unwrap_or_else(|e| panic!("{name} must be valid:\n{e}"));
    let printed = print_module(&module);
    let again = compiler
        .load_source(&printed, name)
        .unwrap_or_else(|e| panic!("printed {name} must re-parse:\n{e}"));
    assert_eq!(
        print_module(&again),
        printed,
        "printing is not a fixed point for {name}"
    );
    insta::assert_snapshot!(name.trim_end_matches(".mlir"), printed);
}

// Each test pins the printed form of one fixture.
#[test]
fn gmmfr_a8w8_all_operands() {
    roundtrip("gmmfr_a8w8_all_operands.mlir");
}
#[test]
fn gmmfr_a8w8_minimal_cumsum_i32() {
    roundtrip("gmmfr_a8w8_minimal_cumsum_i32.mlir");
}
#[test]
fn gmmfr_a8w8_dynamic_rows() {
    roundtrip("gmmfr_a8w8_dynamic_rows.mlir");
}
#[test]
fn gmmfr_a8w4_nd_offset() {
    roundtrip("gmmfr_a8w4_nd_offset.mlir");
}
#[test]
fn gmmfr_a8w4_nz() {
    roundtrip("gmmfr_a8w4_nz.mlir");
}
#[test]
fn gmmfr_nonquantized() {
    roundtrip("gmmfr_nonquantized.mlir");
}
#[test]
fn grouped_matmul() {
    roundtrip("grouped_matmul.mlir");
}
#[test]
fn moe_finalize_routing() {
    roundtrip("moe_finalize_routing.mlir");
}
#[test]
fn moe_init_routing() {
    roundtrip("moe_init_routing.mlir");
}
#[test]
fn format_cast() {
    roundtrip("format_cast.mlir");
}
#[test]
fn bundled_example() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/moe_layer.mlir");
    let compiler = Compiler::new().unwrap();
    let module = compiler
        .load_file(&path)
        .unwrap_or_else(|e| panic!("the example must be valid:\n{e}"));
    insta::assert_snapshot!("example_moe_layer", print_module(&module));
}
