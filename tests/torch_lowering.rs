//! `torch-lower-aten` op by op: small hand-written torch-mlir functions (generic form, as the FX
//! importer prints them) are imported, lowered and run on the CPU, and each result is compared
//! with values computed here from torch's documented semantics. Also: what the pass refuses is
//! left in place with a located remark, and never reaches the CPU target silently.

use gmmfr::{Compiler, RunOptions, print_module};
use gmmfr_dialect::tensor::Tensor;

const PIPELINE: &str = "torch-to-npu,torch-lower-aten";

/// `func.func @main` over torch value tensors.
fn torch_function(params: &[&str], result: &str, body: &str) -> String {
    let params: Vec<String> = params.iter().enumerate().map(|(i, t)| format!("%arg{i}: {t}")).collect();
    format!(
        "func.func @main({}) -> {result} {{\n{body}\n  return %out : {result}\n}}\n",
        params.join(", ")
    )
}

fn int(name: &str, v: i64) -> String {
    format!("  %{name} = \"torch.constant.int\"() <{{value = {v} : i64}}> : () -> !torch.int\n")
}

fn ints(name: &str, values: &[i64]) -> String {
    let mut text = String::new();
    let mut names = Vec::new();
    for (i, v) in values.iter().enumerate() {
        let n = format!("{name}_{i}");
        text.push_str(&int(&n, *v));
        names.push(format!("%{n}"));
    }
    let types = vec!["!torch.int"; values.len()].join(", ");
    text.push_str(&format!(
        "  %{name} = \"torch.prim.ListConstruct\"({}) : ({types}) -> !torch.list<int>\n",
        names.join(", ")
    ));
    text
}

fn f32s(shape: &[usize], values: Vec<f32>) -> Tensor {
    Tensor::from_f32(shape.to_vec(), values).unwrap()
}

fn arange(shape: &[usize]) -> Tensor {
    let n: usize = shape.iter().product();
    f32s(shape, (0..n).map(|i| i as f32).collect())
}

/// Imports, lowers and runs `text`; every torch op must be gone.
fn run(text: &str, args: &[Tensor]) -> Result<Vec<Tensor>, String> {
    let compiler = Compiler::with_unregistered_dialects().map_err(|e| e.to_string())?;
    let mut module = compiler.load_source(text, "case.mlir").map_err(|e| e.to_string())?;
    let report = compiler
        .run_pipeline(&mut module, PIPELINE, &RunOptions::default())
        .map_err(|e| e.to_string())?;
    let printed = print_module(&module);
    if printed.contains("\"torch.aten") || printed.contains("\"torch.prim") {
        let remarks: Vec<String> = report.diagnostics.iter().map(|d| d.to_string()).collect();
        return Err(format!("torch ops left:\n{printed}\n{}", remarks.join("\n")));
    }
    gmmfr::runner::run(&compiler, module, "main", None, args, 1).map_err(|e| e.to_string())
}

struct Case {
    name: &'static str,
    text: String,
    args: Vec<Tensor>,
    expected: Tensor,
}

fn cases() -> Vec<Case> {
    let x234 = arange(&[2, 3, 4]);
    let v = x234.to_f32_vec();
    let at = |a: usize, b: usize, c: usize| v[a * 12 + b * 4 + c];
    let mut out = Vec::new();

    // permute [2, 0, 1]: out[c][a][b] = x[a][b][c].
    let mut permuted = Vec::new();
    for c in 0..4 {
        for a in 0..2 {
            for b in 0..3 {
                permuted.push(at(a, b, c));
            }
        }
    }
    out.push(Case {
        name: "permute",
        text: torch_function(
            &["!torch.vtensor<[2,3,4],f32>"],
            "!torch.vtensor<[4,2,3],f32>",
            &format!(
                "{}  %out = \"torch.aten.permute\"(%arg0, %p) : (!torch.vtensor<[2,3,4],f32>, !torch.list<int>) -> !torch.vtensor<[4,2,3],f32>",
                ints("p", &[2, 0, -2])
            ),
        ),
        args: vec![x234.clone()],
        expected: f32s(&[4, 2, 3], permuted),
    });

    // transpose.int(x, 0, 1) on [2, 3].
    out.push(Case {
        name: "transpose.int",
        text: torch_function(
            &["!torch.vtensor<[2,3],f32>"],
            "!torch.vtensor<[3,2],f32>",
            &format!(
                "{}{}  %out = \"torch.aten.transpose.int\"(%arg0, %a, %b) : (!torch.vtensor<[2,3],f32>, !torch.int, !torch.int) -> !torch.vtensor<[3,2],f32>",
                int("a", 0),
                int("b", -1)
            ),
        ),
        args: vec![arange(&[2, 3])],
        expected: f32s(&[3, 2], vec![0., 3., 1., 4., 2., 5.]),
    });

    // view [2, 3, 4] -> [4, 6], then unsqueeze(0) -> [1, 4, 6], squeeze(0) -> [4, 6] (row-major data unchanged).
    out.push(Case {
        name: "view/unsqueeze/squeeze",
        text: torch_function(
            &["!torch.vtensor<[2,3,4],f32>"],
            "!torch.vtensor<[4,6],f32>",
            &format!(
                "{}{}  %v = \"torch.aten.view\"(%arg0, %s) : (!torch.vtensor<[2,3,4],f32>, !torch.list<int>) -> !torch.vtensor<[4,6],f32>\n  %u = \"torch.aten.unsqueeze\"(%v, %z) : (!torch.vtensor<[4,6],f32>, !torch.int) -> !torch.vtensor<[1,4,6],f32>\n  %out = \"torch.aten.squeeze.dim\"(%u, %z) : (!torch.vtensor<[1,4,6],f32>, !torch.int) -> !torch.vtensor<[4,6],f32>",
                ints("s", &[4, -1]),
                int("z", 0)
            ),
        ),
        args: vec![x234.clone()],
        expected: f32s(&[4, 6], v.clone()),
    });

    // view [1, 1] -> [] (rank 0) -> [1].
    out.push(Case {
        name: "view to and from rank 0",
        text: torch_function(
            &["!torch.vtensor<[1,1],f32>"],
            "!torch.vtensor<[1],f32>",
            "  %e = \"torch.prim.ListConstruct\"() : () -> !torch.list<int>\n  %one = \"torch.constant.int\"() <{value = 1 : i64}> : () -> !torch.int\n  %l = \"torch.prim.ListConstruct\"(%one) : (!torch.int) -> !torch.list<int>\n  %s = \"torch.aten.view\"(%arg0, %e) : (!torch.vtensor<[1,1],f32>, !torch.list<int>) -> !torch.vtensor<[],f32>\n  %out = \"torch.aten.view\"(%s, %l) : (!torch.vtensor<[],f32>, !torch.list<int>) -> !torch.vtensor<[1],f32>",
        ),
        args: vec![f32s(&[1, 1], vec![7.5])],
        expected: f32s(&[1], vec![7.5]),
    });

    // slice rows 1.. by 2 of [5, 2] (end = INT64_MAX as torch exports it).
    out.push(Case {
        name: "slice.Tensor",
        text: torch_function(
            &["!torch.vtensor<[5,2],f32>"],
            "!torch.vtensor<[2,2],f32>",
            &format!(
                "{}{}{}{}  %out = \"torch.aten.slice.Tensor\"(%arg0, %d, %s, %e, %st) : (!torch.vtensor<[5,2],f32>, !torch.int, !torch.int, !torch.int, !torch.int) -> !torch.vtensor<[2,2],f32>",
                int("d", 0),
                int("s", 1),
                int("e", i64::MAX),
                int("st", 2)
            ),
        ),
        args: vec![arange(&[5, 2])],
        expected: f32s(&[2, 2], vec![2., 3., 6., 7.]),
    });

    // split_with_sizes [2, 3] on dim 0, the second piece; cat([piece, first], 0).
    out.push(Case {
        name: "split_with_sizes + cat",
        text: torch_function(
            &["!torch.vtensor<[5,2],f32>"],
            "!torch.vtensor<[5,2],f32>",
            &format!(
                "{}{}  %l = \"torch.aten.split_with_sizes\"(%arg0, %sz, %d) : (!torch.vtensor<[5,2],f32>, !torch.list<int>, !torch.int) -> !torch.list<vtensor>\n  %p:2 = \"torch.prim.ListUnpack\"(%l) : (!torch.list<vtensor>) -> (!torch.vtensor<[2,2],f32>, !torch.vtensor<[3,2],f32>)\n  %c = \"torch.prim.ListConstruct\"(%p#1, %p#0) : (!torch.vtensor<[3,2],f32>, !torch.vtensor<[2,2],f32>) -> !torch.list<vtensor>\n  %out = \"torch.aten.cat\"(%c, %d) : (!torch.list<vtensor>, !torch.int) -> !torch.vtensor<[5,2],f32>",
                ints("sz", &[2, 3]),
                int("d", 0)
            ),
        ),
        args: vec![arange(&[5, 2])],
        expected: f32s(&[5, 2], vec![4., 5., 6., 7., 8., 9., 0., 1., 2., 3.]),
    });

    // expand [3, 1] -> [3, 4], plus add.Tensor with alpha 2 of a broadcast row: x + 2 * r.
    out.push(Case {
        name: "expand + add.Tensor(alpha)",
        text: torch_function(
            &["!torch.vtensor<[3,1],f32>", "!torch.vtensor<[4],f32>"],
            "!torch.vtensor<[3,4],f32>",
            &format!(
                "{}{}{}  %x = \"torch.aten.expand\"(%arg0, %s, %f) : (!torch.vtensor<[3,1],f32>, !torch.list<int>, !torch.bool) -> !torch.vtensor<[3,4],f32>\n  %out = \"torch.aten.add.Tensor\"(%x, %arg1, %two) : (!torch.vtensor<[3,4],f32>, !torch.vtensor<[4],f32>, !torch.int) -> !torch.vtensor<[3,4],f32>",
                ints("s", &[3, 4]),
                "  %f = \"torch.constant.bool\"() <{value = false}> : () -> !torch.bool\n",
                int("two", 2)
            ),
        ),
        args: vec![f32s(&[3, 1], vec![1., 2., 3.]), f32s(&[4], vec![0., 1., 2., 3.])],
        expected: f32s(&[3, 4], (0..12).map(|i| (i / 4 + 1) as f32 + 2.0 * (i % 4) as f32).collect()),
    });

    // Integer division by a rank-0 tensor: floor rounds down, trunc toward zero; summed.
    out.push(Case {
        name: "div.Tensor_mode floor/trunc",
        text: torch_function(
            &["!torch.vtensor<[4],si64>"],
            "!torch.vtensor<[4],si64>",
            &format!(
                "{}  %t = \"torch.prim.NumToTensor.Scalar\"(%two) : (!torch.int) -> !torch.vtensor<[],si64>\n  %floor = \"torch.constant.str\"() <{{value = \"floor\"}}> : () -> !torch.str\n  %trunc = \"torch.constant.str\"() <{{value = \"trunc\"}}> : () -> !torch.str\n  %a = \"torch.aten.div.Tensor_mode\"(%arg0, %t, %floor) : (!torch.vtensor<[4],si64>, !torch.vtensor<[],si64>, !torch.str) -> !torch.vtensor<[4],si64>\n  %b = \"torch.aten.div.Tensor_mode\"(%arg0, %t, %trunc) : (!torch.vtensor<[4],si64>, !torch.vtensor<[],si64>, !torch.str) -> !torch.vtensor<[4],si64>\n  %k = \"torch.constant.int\"() <{{value = 100 : i64}}> : () -> !torch.int\n  %a100 = \"torch.aten.mul.Scalar\"(%a, %k) : (!torch.vtensor<[4],si64>, !torch.int) -> !torch.vtensor<[4],si64>\n  %one = \"torch.constant.int\"() <{{value = 1 : i64}}> : () -> !torch.int\n  %out = \"torch.aten.add.Tensor\"(%a100, %b, %one) : (!torch.vtensor<[4],si64>, !torch.vtensor<[4],si64>, !torch.int) -> !torch.vtensor<[4],si64>",
                int("two", 2)
            ),
        ),
        args: vec![Tensor::from_i64(vec![4], vec![-7, 7, -1, 0]).unwrap()],
        // floor: -4, 3, -1, 0; trunc: -3, 3, 0, 0.
        expected: Tensor::from_i64(vec![4], vec![-403, 303, -100, 0]).unwrap(),
    });

    // Activations and scalar arithmetic: rsub(sigmoid(x), 1) + silu(x) - relu(-x) * 0.5 + x^2.
    let xs = [-2.0f32, -0.5, 0.0, 1.5];
    let expected: Vec<f32> = xs
        .iter()
        .map(|&x| {
            let (x, s) = (x as f64, 1.0 / (1.0 + (-(x as f64)).exp()));
            ((1.0 - s) + x * s - (-x).max(0.0) * 0.5 + x * x) as f32
        })
        .collect();
    out.push(Case {
        name: "sigmoid/silu/relu/neg/rsub/pow",
        text: torch_function(
            &["!torch.vtensor<[4],f32>"],
            "!torch.vtensor<[4],f32>",
            "  %one = \"torch.constant.int\"() <{value = 1 : i64}> : () -> !torch.int\n  %half = \"torch.constant.float\"() <{value = 5.000000e-01 : f64}> : () -> !torch.float\n  %two = \"torch.constant.int\"() <{value = 2 : i64}> : () -> !torch.int\n  %s = \"torch.aten.sigmoid\"(%arg0) : (!torch.vtensor<[4],f32>) -> !torch.vtensor<[4],f32>\n  %r = \"torch.aten.rsub.Scalar\"(%s, %one, %one) : (!torch.vtensor<[4],f32>, !torch.int, !torch.int) -> !torch.vtensor<[4],f32>\n  %si = \"torch.aten.silu\"(%arg0) : (!torch.vtensor<[4],f32>) -> !torch.vtensor<[4],f32>\n  %n = \"torch.aten.neg\"(%arg0) : (!torch.vtensor<[4],f32>) -> !torch.vtensor<[4],f32>\n  %re = \"torch.aten.relu\"(%n) : (!torch.vtensor<[4],f32>) -> !torch.vtensor<[4],f32>\n  %h = \"torch.aten.mul.Scalar\"(%re, %half) : (!torch.vtensor<[4],f32>, !torch.float) -> !torch.vtensor<[4],f32>\n  %sq = \"torch.aten.pow.Tensor_Scalar\"(%arg0, %two) : (!torch.vtensor<[4],f32>, !torch.int) -> !torch.vtensor<[4],f32>\n  %a = \"torch.aten.add.Tensor\"(%r, %si, %one) : (!torch.vtensor<[4],f32>, !torch.vtensor<[4],f32>, !torch.int) -> !torch.vtensor<[4],f32>\n  %b = \"torch.aten.sub.Tensor\"(%a, %h, %one) : (!torch.vtensor<[4],f32>, !torch.vtensor<[4],f32>, !torch.int) -> !torch.vtensor<[4],f32>\n  %out = \"torch.aten.add.Tensor\"(%b, %sq, %one) : (!torch.vtensor<[4],f32>, !torch.vtensor<[4],f32>, !torch.int) -> !torch.vtensor<[4],f32>",
        ),
        args: vec![f32s(&[4], xs.to_vec())],
        expected: f32s(&[4], expected),
    });

    // convert_element_type: i64 -> f32 (code 6), times bf16-rounded x (code 15, back to f32).
    out.push(Case {
        name: "convert_element_type",
        text: torch_function(
            &["!torch.vtensor<[3],si64>", "!torch.vtensor<[3],f32>"],
            "!torch.vtensor<[3],f32>",
            &format!(
                "{}{}  %a = \"torch.prims.convert_element_type\"(%arg0, %f) : (!torch.vtensor<[3],si64>, !torch.int) -> !torch.vtensor<[3],f32>\n  %b = \"torch.prims.convert_element_type\"(%arg1, %bf) : (!torch.vtensor<[3],f32>, !torch.int) -> !torch.vtensor<[3],bf16>\n  %c = \"torch.prims.convert_element_type\"(%b, %f) : (!torch.vtensor<[3],bf16>, !torch.int) -> !torch.vtensor<[3],f32>\n  %out = \"torch.aten.mul.Tensor\"(%a, %c) : (!torch.vtensor<[3],f32>, !torch.vtensor<[3],f32>) -> !torch.vtensor<[3],f32>",
                int("f", 6),
                int("bf", 15)
            ),
        ),
        args: vec![
            Tensor::from_i64(vec![3], vec![1, -2, 3]).unwrap(),
            f32s(&[3], vec![1.0, 1.00390625 + 0.001, 3.0]),
        ],
        // 1.00490625 rounds to bf16 1.0078125 (nearest of 1.00390625 and 1.0078125).
        expected: f32s(&[3], vec![1.0, -2.0 * 1.0078125, 9.0]),
    });

    // mm and bmm.
    out.push(Case {
        name: "mm + bmm",
        text: torch_function(
            &["!torch.vtensor<[2,3],f32>", "!torch.vtensor<[3,2],f32>", "!torch.vtensor<[1,2,2],f32>"],
            "!torch.vtensor<[1,2,2],f32>",
            &format!(
                "{}  %m = \"torch.aten.mm\"(%arg0, %arg1) : (!torch.vtensor<[2,3],f32>, !torch.vtensor<[3,2],f32>) -> !torch.vtensor<[2,2],f32>\n  %u = \"torch.aten.unsqueeze\"(%m, %z) : (!torch.vtensor<[2,2],f32>, !torch.int) -> !torch.vtensor<[1,2,2],f32>\n  %out = \"torch.aten.bmm\"(%u, %arg2) : (!torch.vtensor<[1,2,2],f32>, !torch.vtensor<[1,2,2],f32>) -> !torch.vtensor<[1,2,2],f32>",
                int("z", 0)
            ),
        ),
        // [[0,1,2],[3,4,5]] @ [[0,1],[2,3],[4,5]] = [[10,13],[28,40]]; @ [[1,0],[1,1]] = [[23,13],[68,40]].
        args: vec![arange(&[2, 3]), arange(&[3, 2]), f32s(&[1, 2, 2], vec![1., 0., 1., 1.])],
        expected: f32s(&[1, 2, 2], vec![23., 13., 68., 40.]),
    });

    // sum over dim 1 keeping it, then mean over the last dim.
    out.push(Case {
        name: "sum.dim_IntList(keepdim) + mean.dim",
        text: torch_function(
            &["!torch.vtensor<[2,3,4],f32>"],
            "!torch.vtensor<[2,1],f32>",
            &format!(
                "{}{}  %t = \"torch.constant.bool\"() <{{value = true}}> : () -> !torch.bool\n  %none = \"torch.constant.none\"() : () -> !torch.none\n  %s = \"torch.aten.sum.dim_IntList\"(%arg0, %d1, %t, %none) : (!torch.vtensor<[2,3,4],f32>, !torch.list<int>, !torch.bool, !torch.none) -> !torch.vtensor<[2,1,4],f32>\n  %f = \"torch.constant.bool\"() <{{value = false}}> : () -> !torch.bool\n  %out = \"torch.aten.mean.dim\"(%s, %dl, %f, %none) : (!torch.vtensor<[2,1,4],f32>, !torch.list<int>, !torch.bool, !torch.none) -> !torch.vtensor<[2,1],f32>",
                ints("d1", &[1]),
                ints("dl", &[-1])
            ),
        ),
        args: vec![x234.clone()],
        expected: f32s(
            &[2, 1],
            (0..2)
                .map(|a| (0..3).flat_map(|b| (0..4).map(move |c| (a, b, c))).map(|(a, b, c)| at(a, b, c)).sum::<f32>() / 4.0)
                .collect(),
        ),
    });

    // index.Tensor on rows with a negative index, then index_select of columns.
    out.push(Case {
        name: "index.Tensor + index_select",
        text: torch_function(
            &["!torch.vtensor<[4,3],f32>", "!torch.vtensor<[3],si64>", "!torch.vtensor<[2],si32>"],
            "!torch.vtensor<[3,2],f32>",
            &format!(
                "  %l = \"torch.prim.ListConstruct\"(%arg1) : (!torch.vtensor<[3],si64>) -> !torch.list<optional<vtensor>>\n  %r = \"torch.aten.index.Tensor\"(%arg0, %l) : (!torch.vtensor<[4,3],f32>, !torch.list<optional<vtensor>>) -> !torch.vtensor<[3,3],f32>\n{}  %out = \"torch.aten.index_select\"(%r, %one, %arg2) : (!torch.vtensor<[3,3],f32>, !torch.int, !torch.vtensor<[2],si32>) -> !torch.vtensor<[3,2],f32>",
                int("one", 1)
            ),
        ),
        args: vec![
            arange(&[4, 3]),
            Tensor::from_i64(vec![3], vec![3, -1, 0]).unwrap(),
            Tensor::from_i32(vec![2], vec![2, 0]).unwrap(),
        ],
        // rows 3, 3, 0 = [9,10,11],[9,10,11],[0,1,2]; columns 2, 0.
        expected: f32s(&[3, 2], vec![11., 9., 11., 9., 2., 0.]),
    });
    // Stable sort (ties keep their order), descending, then 10 * value + index; cumsum of that.
    out.push(Case {
        name: "sort.stable descending + cumsum",
        text: torch_function(
            &["!torch.vtensor<[6],si64>"],
            "!torch.vtensor<[6],si64>",
            &format!(
                "  %t = \"torch.constant.bool\"() <{{value = true}}> : () -> !torch.bool\n{}  %s:2 = \"torch.operator\"(%arg0, %t, %d, %t) <{{name = \"torch.aten.sort.stable\"}}> : (!torch.vtensor<[6],si64>, !torch.bool, !torch.int, !torch.bool) -> (!torch.vtensor<[6],si64>, !torch.vtensor<[6],si64>)\n  %k = \"torch.constant.int\"() <{{value = 10 : i64}}> : () -> !torch.int\n  %v10 = \"torch.aten.mul.Scalar\"(%s#0, %k) : (!torch.vtensor<[6],si64>, !torch.int) -> !torch.vtensor<[6],si64>\n  %one = \"torch.constant.int\"() <{{value = 1 : i64}}> : () -> !torch.int\n  %both = \"torch.aten.add.Tensor\"(%v10, %s#1, %one) : (!torch.vtensor<[6],si64>, !torch.vtensor<[6],si64>, !torch.int) -> !torch.vtensor<[6],si64>\n  %none = \"torch.constant.none\"() : () -> !torch.none\n  %z = \"torch.constant.int\"() <{{value = 0 : i64}}> : () -> !torch.int\n  %out = \"torch.aten.cumsum\"(%both, %z, %none) : (!torch.vtensor<[6],si64>, !torch.int, !torch.none) -> !torch.vtensor<[6],si64>",
                int("d", -1)
            ),
        ),
        // [2, 0, 2, 1, 0, 2] descending, stable: values 2,2,2,1,0,0 at indices 0,2,5,3,1,4;
        // 10 * value + index = 20, 22, 25, 13, 1, 4; prefix sums 20, 42, 67, 80, 81, 85.
        args: vec![Tensor::from_i64(vec![6], vec![2, 0, 2, 1, 0, 2]).unwrap()],
        expected: Tensor::from_i64(vec![6], vec![20, 42, 67, 80, 81, 85]).unwrap(),
    });

    // bincount (a value past minlength is skipped) + cumsum, and histc over [0, 3] (3.0 lands
    // in the last bin, -1.0 outside is skipped).
    out.push(Case {
        name: "bincount + histc",
        text: torch_function(
            &["!torch.vtensor<[5],si64>", "!torch.vtensor<[5],f32>"],
            "!torch.vtensor<[3],f32>",
            &format!(
                "  %none = \"torch.constant.none\"() : () -> !torch.none\n{}  %b = \"torch.aten.bincount\"(%arg0, %none, %three) : (!torch.vtensor<[5],si64>, !torch.none, !torch.int) -> !torch.vtensor<[?],si64>\n  %z = \"torch.constant.int\"() <{{value = 0 : i64}}> : () -> !torch.int\n  %c = \"torch.aten.cumsum\"(%b, %z, %none) : (!torch.vtensor<[?],si64>, !torch.int, !torch.none) -> !torch.vtensor<[3],si64>\n  %f = \"torch.constant.int\"() <{{value = 6 : i64}}> : () -> !torch.int\n  %cf = \"torch.prims.convert_element_type\"(%c, %f) : (!torch.vtensor<[3],si64>, !torch.int) -> !torch.vtensor<[3],f32>\n  %h = \"torch.operator\"(%arg1, %three, %z, %three) <{{name = \"torch.aten.histc\"}}> : (!torch.vtensor<[5],f32>, !torch.int, !torch.int, !torch.int) -> !torch.vtensor<[3],f32>\n  %k = \"torch.constant.int\"() <{{value = 100 : i64}}> : () -> !torch.int\n  %h100 = \"torch.aten.mul.Scalar\"(%h, %k) : (!torch.vtensor<[3],f32>, !torch.int) -> !torch.vtensor<[3],f32>\n  %one = \"torch.constant.int\"() <{{value = 1 : i64}}> : () -> !torch.int\n  %out = \"torch.aten.add.Tensor\"(%cf, %h100, %one) : (!torch.vtensor<[3],f32>, !torch.vtensor<[3],f32>, !torch.int) -> !torch.vtensor<[3],f32>",
                int("three", 3)
            ),
        ),
        // bincount([2, 0, 2, 7, 1], 3) = [1, 1, 2] (7 skipped), cumsum [1, 2, 4];
        // histc([0.5, 3.0, 1.0, -1.0, 2.9], 3, 0, 3) = [1, 1, 2]: 1 + 100, 2 + 100, 4 + 200.
        args: vec![
            Tensor::from_i64(vec![5], vec![2, 0, 2, 7, 1]).unwrap(),
            f32s(&[5], vec![0.5, 3.0, 1.0, -1.0, 2.9]),
        ],
        expected: f32s(&[3], vec![101., 102., 204.]),
    });

    // index_put accumulating into zeros (-1 wraps to the last row), then overwriting (the later
    // write of a repeated index wins).
    out.push(Case {
        name: "index_put (accumulate, overwrite) + zeros",
        text: torch_function(
            &["!torch.vtensor<[4],si64>", "!torch.vtensor<[4,2],f32>", "!torch.vtensor<[2],si64>", "!torch.vtensor<[2,2],f32>"],
            "!torch.vtensor<[3,2],f32>",
            "  %none = \"torch.constant.none\"() : () -> !torch.none\n  %t = \"torch.constant.bool\"() <{value = true}> : () -> !torch.bool\n  %f = \"torch.constant.bool\"() <{value = false}> : () -> !torch.bool\n  %three = \"torch.constant.int\"() <{value = 3 : i64}> : () -> !torch.int\n  %two = \"torch.constant.int\"() <{value = 2 : i64}> : () -> !torch.int\n  %shape = \"torch.prim.ListConstruct\"(%three, %two) : (!torch.int, !torch.int) -> !torch.list<int>\n  %zeros = \"torch.aten.zeros\"(%shape, %none, %none, %none, %none) : (!torch.list<int>, !torch.none, !torch.none, !torch.none, !torch.none) -> !torch.vtensor<[3,2],f32>\n  %l = \"torch.prim.ListConstruct\"(%arg0) : (!torch.vtensor<[4],si64>) -> !torch.list<optional<vtensor>>\n  %acc = \"torch.aten.index_put\"(%zeros, %l, %arg1, %t) : (!torch.vtensor<[3,2],f32>, !torch.list<optional<vtensor>>, !torch.vtensor<[4,2],f32>, !torch.bool) -> !torch.vtensor<[3,2],f32>\n  %l2 = \"torch.prim.ListConstruct\"(%arg2) : (!torch.vtensor<[2],si64>) -> !torch.list<optional<vtensor>>\n  %out = \"torch.aten.index_put\"(%acc, %l2, %arg3, %f) : (!torch.vtensor<[3,2],f32>, !torch.list<optional<vtensor>>, !torch.vtensor<[2,2],f32>, !torch.bool) -> !torch.vtensor<[3,2],f32>",
        ),
        // rows [1,2],[3,4],[5,6],[7,8] added at [2, 0, 2, -1]: row0 = [3,4], row2 = [13,16];
        // then [9,9], [8,8] written at [1, 1]: row1 = [8,8].
        args: vec![
            Tensor::from_i64(vec![4], vec![2, 0, 2, -1]).unwrap(),
            f32s(&[4, 2], vec![1., 2., 3., 4., 5., 6., 7., 8.]),
            Tensor::from_i64(vec![2], vec![1, 1]).unwrap(),
            f32s(&[2, 2], vec![9., 9., 8., 8.]),
        ],
        expected: f32s(&[3, 2], vec![3., 4., 8., 8., 13., 16.]),
    });
    // torch_npu's npu_swiglu on the last dim: silu(first half) * second half.
    let xs: Vec<f32> = vec![-1.0, 0.5, 2.0, -3.0, 1.5, -0.25, 0.75, 4.0];
    let silu = |v: f32| (v as f64) / (1.0 + (-(v as f64)).exp());
    let swiglu: Vec<f32> = (0..2)
        .flat_map(|r| (0..2).map(move |c| (r, c)))
        .map(|(r, c)| (silu(xs[r * 4 + c]) * xs[r * 4 + c + 2] as f64) as f32)
        .collect();
    out.push(Case {
        name: "npu_swiglu",
        text: torch_function(
            &["!torch.vtensor<[2,4],f32>"],
            "!torch.vtensor<[2,2],f32>",
            &format!(
                "{}  %out = \"torch.operator\"(%arg0, %d) <{{name = \"torch.npu.npu_swiglu\"}}> : (!torch.vtensor<[2,4],f32>, !torch.int) -> !torch.vtensor<[2,2],f32>",
                int("d", -1)
            ),
        ),
        args: vec![f32s(&[2, 4], xs.clone())],
        expected: f32s(&[2, 2], swiglu),
    });
    // A router: softmax over experts, then the top 2 (values, and indices as f32 * 10 added).
    let logits: Vec<f32> = vec![0.5, -1.0, 2.0, 0.25, 1.0, 3.0, -2.0, 3.0];
    let mut router = Vec::new();
    for r in 0..2 {
        let row = &logits[r * 4..r * 4 + 4];
        let max = row.iter().cloned().fold(f32::MIN, f32::max) as f64;
        let exps: Vec<f64> = row.iter().map(|v| (*v as f64 - max).exp()).collect();
        let total: f64 = exps.iter().sum();
        let probs: Vec<f64> = exps.iter().map(|e| e / total).collect();
        let mut order: Vec<usize> = (0..4).collect();
        // Larger first; ties keep the lower index first.
        order.sort_by(|a, b| probs[*b].partial_cmp(&probs[*a]).unwrap().then(a.cmp(b)));
        for &i in &order[..2] {
            router.push((probs[i] + 10.0 * i as f64) as f32);
        }
    }
    out.push(Case {
        name: "_softmax + topk",
        text: torch_function(
            &["!torch.vtensor<[2,4],f32>"],
            "!torch.vtensor<[2,2],f32>",
            &format!(
                "{}{}  %f = \"torch.constant.bool\"() <{{value = false}}> : () -> !torch.bool\n  %t = \"torch.constant.bool\"() <{{value = true}}> : () -> !torch.bool\n  %p = \"torch.aten._softmax\"(%arg0, %d, %f) : (!torch.vtensor<[2,4],f32>, !torch.int, !torch.bool) -> !torch.vtensor<[2,4],f32>\n  %top:2 = \"torch.aten.topk\"(%p, %k, %d, %t, %t) : (!torch.vtensor<[2,4],f32>, !torch.int, !torch.int, !torch.bool, !torch.bool) -> (!torch.vtensor<[2,2],f32>, !torch.vtensor<[2,2],si64>)\n  %six = \"torch.constant.int\"() <{{value = 6 : i64}}> : () -> !torch.int\n  %ix = \"torch.prims.convert_element_type\"(%top#1, %six) : (!torch.vtensor<[2,2],si64>, !torch.int) -> !torch.vtensor<[2,2],f32>\n  %ten = \"torch.constant.int\"() <{{value = 10 : i64}}> : () -> !torch.int\n  %ix10 = \"torch.aten.mul.Scalar\"(%ix, %ten) : (!torch.vtensor<[2,2],f32>, !torch.int) -> !torch.vtensor<[2,2],f32>\n  %one = \"torch.constant.int\"() <{{value = 1 : i64}}> : () -> !torch.int\n  %out = \"torch.aten.add.Tensor\"(%top#0, %ix10, %one) : (!torch.vtensor<[2,2],f32>, !torch.vtensor<[2,2],f32>, !torch.int) -> !torch.vtensor<[2,2],f32>",
                int("d", -1),
                int("k", 2)
            ),
        ),
        args: vec![f32s(&[2, 4], logits.clone())],
        expected: f32s(&[2, 2], router),
    });
    out
}

// Each lowering computes what torch computes (within f32 rounding of the math functions).
#[test]
fn each_lowered_op_matches_torch_semantics() {
    let mut failures = Vec::new();
    let cases = cases();
    for case in &cases {
        match run(&case.text, &case.args) {
            Ok(results) => match gmmfr_dialect::reference::compare(&results[0], &case.expected) {
                Ok(c) if c.within(1e-6) => {}
                Ok(c) => failures.push(format!(
                    "{}: relative error {:.3e}: got {:?}, expected {:?}",
                    case.name,
                    c.relative,
                    results[0].to_f64_vec(),
                    case.expected.to_f64_vec()
                )),
                Err(e) => failures.push(format!("{}: {e}", case.name)),
            },
            Err(e) => failures.push(format!("{}: {e}", case.name)),
        }
    }
    assert!(cases.len() >= 12);
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

// An op the pass cannot lower (a shape argument computed at run time) stays, with a located
// remark naming the reason; running the module then fails with a located error, not a crash.
#[test]
fn an_unlowerable_op_stays_with_a_located_reason() {
    let text = torch_function(
        &["!torch.vtensor<[2,3],f32>", "!torch.int"],
        "!torch.vtensor<[3,2],f32>",
        &format!(
            "{}  %l = \"torch.prim.ListConstruct\"(%arg1, %k) : (!torch.int, !torch.int) -> !torch.list<int>\n  %out = \"torch.aten.view\"(%arg0, %l) : (!torch.vtensor<[2,3],f32>, !torch.list<int>) -> !torch.vtensor<[3,2],f32>",
            int("k", 2)
        ),
    );
    let compiler = Compiler::with_unregistered_dialects().unwrap();
    let mut module = compiler.load_source(&text, "case.mlir").unwrap();
    let report = compiler.run_pipeline(&mut module, PIPELINE, &RunOptions::default()).unwrap();
    // A view needs nothing but the static result type: it is lowered even so.
    assert!(!print_module(&module).contains("torch.aten.view"));
    assert!(report.diagnostics.iter().all(|d| !d.message.contains("not lowered")));

    // A slice whose start is not a constant is refused.
    let text = torch_function(
        &["!torch.vtensor<[5,2],f32>", "!torch.int"],
        "!torch.vtensor<[2,2],f32>",
        &format!(
            "{}{}{}  %out = \"torch.aten.slice.Tensor\"(%arg0, %d, %arg1, %e, %step) : (!torch.vtensor<[5,2],f32>, !torch.int, !torch.int, !torch.int, !torch.int) -> !torch.vtensor<[2,2],f32>",
            int("d", 0),
            int("e", 4),
            int("step", 1)
        ),
    );
    let mut module = compiler.load_source(&text, "case.mlir").unwrap();
    let report = compiler.run_pipeline(&mut module, PIPELINE, &RunOptions::default()).unwrap();
    let remark = report
        .diagnostics
        .iter()
        .find(|d| d.message.contains("torch.aten.slice.Tensor not lowered"))
        .unwrap_or_else(|| panic!("{:?}", report.diagnostics));
    assert!(remark.message.contains("operand 2 is not a constant integer"), "{}", remark.message);
    assert!(remark.to_string().starts_with("case.mlir:"), "{remark}");
    let args = vec![arange(&[5, 2])];
    let error = gmmfr::runner::run(&compiler, module, "main", None, &args, 1).unwrap_err().to_string();
    assert!(error.contains("case.mlir:"), "{error}");
}

// Weights baked into an export (`torch.vtensor.literal` with a dense_resource blob) become
// constants of the same elements, and `embedding` gathers their rows.
#[test]
fn literal_weights_and_embedding_run() {
    let text = "func.func @main(%arg0: !torch.vtensor<[3],si64>) -> !torch.vtensor<[3,2],f32> {
  %w = \"torch.vtensor.literal\"() <{value = dense_resource<table> : tensor<4x2xf32>}> : () -> !torch.vtensor<[4,2],f32>
  %p = \"torch.constant.int\"() <{value = -1 : i64}> : () -> !torch.int
  %f = \"torch.constant.bool\"() <{value = false}> : () -> !torch.bool
  %out = \"torch.aten.embedding\"(%w, %arg0, %p, %f, %f) : (!torch.vtensor<[4,2],f32>, !torch.vtensor<[3],si64>, !torch.int, !torch.bool, !torch.bool) -> !torch.vtensor<[3,2],f32>
  return %out : !torch.vtensor<[3,2],f32>
}
{-#
  dialect_resources: {
    builtin: {
      table: \"0x040000000000803F0000004000004040000080400000A0400000C0400000E04000000041\"
    }
  }
#-}
";
    // The table is [[1, 2], [3, 4], [5, 6], [7, 8]]; rows 3, 0, 2.
    let results = run(text, &[Tensor::from_i64(vec![3], vec![3, 0, 2]).unwrap()]).unwrap();
    assert_eq!(results[0].to_f32_vec(), vec![7., 8., 1., 2., 5., 6.]);
}
