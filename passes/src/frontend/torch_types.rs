//! torch-mlir's value-tensor types and their builtin equivalents.

/// The builtin element type of a torch dtype, if it has one with the same meaning. Signed
/// integers become signless (MLIR's arithmetic says signedness in the op, not the type).
pub fn builtin_element(dtype: &str) -> Option<&'static str> {
    Some(match dtype {
        "f16" => "f16",
        "bf16" => "bf16",
        "f32" => "f32",
        "f64" => "f64",
        "i1" => "i1",
        "si8" => "i8",
        "si16" => "i16",
        "si32" => "i32",
        "si64" => "i64",
        _ => return None,
    })
}

/// `tensor<5x16xf32>` for `!torch.vtensor<[5,16],f32>` (`?` for a dynamic dim, printed `?` or
/// `-1` by torch-mlir).
/// `None` for any other type, an unknown shape or a dtype without a builtin equivalent.
pub fn builtin_tensor(torch_type: &str) -> Option<String> {
    let inner = torch_type.strip_prefix("!torch.vtensor<[")?.strip_suffix('>')?;
    let (dims, dtype) = inner.split_once("],")?;
    let element = builtin_element(dtype.trim())?;
    let mut text = String::from("tensor<");
    for dim in dims.split(',').map(str::trim).filter(|d| !d.is_empty()) {
        if dim == "?" {
            text.push_str("?x");
            continue;
        }
        match dim.parse::<i64>().ok()? {
            -1 => text.push('?'),
            d if d >= 0 => text.push_str(&d.to_string()),
            _ => return None,
        }
        text.push('x');
    }
    text.push_str(element);
    text.push('>');
    Some(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn value_tensors_become_builtin_tensors() {
        assert_eq!(builtin_tensor("!torch.vtensor<[5,16],f32>").as_deref(), Some("tensor<5x16xf32>"));
        assert_eq!(builtin_tensor("!torch.vtensor<[10],si64>").as_deref(), Some("tensor<10xi64>"));
        assert_eq!(builtin_tensor("!torch.vtensor<[],bf16>").as_deref(), Some("tensor<bf16>"));
        assert_eq!(builtin_tensor("!torch.vtensor<[-1,4],si8>").as_deref(), Some("tensor<?x4xi8>"));
        assert_eq!(builtin_tensor("!torch.vtensor<[?],si64>").as_deref(), Some("tensor<?xi64>"));
    }

    #[test]
    fn other_types_are_left_alone() {
        for text in [
            "!torch.int",
            "!torch.list<int>",
            "!torch.vtensor<[4],ui8>",
            "!torch.vtensor<[4],!torch.qint8>",
            "!torch.vtensor<*,f32>",
            "!torch.tensor<[4],f32>",
            "!torch.vtensor<[-2],f32>",
        ] {
            assert_eq!(builtin_tensor(text), None, "{text}");
        }
    }
}
