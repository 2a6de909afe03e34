//! Reading op attributes into plain Rust values. The only `unsafe` code of the interpreter is
//! here: two `mlir_sys` calls melior 0.27.8 does not wrap, each in one helper.

use super::types::TypeDesc;
use super::value::{ElemType, IntType, MAX_ELEMENTS, Scalar};
use half::{bf16, f16};
use melior::ir::{
    AffineMap, Attribute, OperationRef,
    attribute::{
        ArrayAttribute, AttributeLike, DenseElementsAttribute, DenseI32ArrayAttribute, DenseI64ArrayAttribute,
        FloatAttribute, IntegerAttribute, StringAttribute,
    },
    operation::OperationLike,
};

/// MLIR's marker of a dynamic size, offset or stride in static arrays (`ShapedType::kDynamic`).
pub const DYNAMIC: i64 = i64::MIN;

/// An integer attribute's value (sign-extended).
pub fn int(op: OperationRef<'_, '_>, name: &str) -> Option<i64> {
    let attribute = op.attribute(name).ok()?;
    IntegerAttribute::try_from(attribute).ok().map(|a| a.value())
}

/// A float attribute's value.
pub fn float(op: OperationRef<'_, '_>, name: &str) -> Option<f64> {
    let attribute = op.attribute(name).ok()?;
    FloatAttribute::try_from(attribute).ok().map(|a| a.value())
}

/// A string attribute's value.
pub fn string<'c>(op: OperationRef<'c, '_>, name: &str) -> Option<&'c str> {
    let attribute = op.attribute(name).ok()?;
    StringAttribute::try_from(attribute).ok().map(|a| a.value())
}

/// A dense i64 array attribute (`array<i64: ...>`).
pub fn i64_array(op: OperationRef<'_, '_>, name: &str) -> Option<Vec<i64>> {
    let attribute = op.attribute(name).ok()?;
    let array = DenseI64ArrayAttribute::try_from(attribute).ok()?;
    (0..array.len()).map(|i| array.element(i).ok()).collect()
}

/// A dense i32 array attribute (`array<i32: ...>`), e.g. `operandSegmentSizes`.
pub fn i32_array(op: OperationRef<'_, '_>, name: &str) -> Option<Vec<i32>> {
    let attribute = op.attribute(name).ok()?;
    let array = DenseI32ArrayAttribute::try_from(attribute).ok()?;
    (0..array.len()).map(|i| array.element(i).ok()).collect()
}

/// The elements of an array attribute.
pub fn array<'c>(op: OperationRef<'c, '_>, name: &str) -> Option<Vec<Attribute<'c>>> {
    let attribute = op.attribute(name).ok()?;
    array_elements(attribute)
}

fn array_elements(attribute: Attribute<'_>) -> Option<Vec<Attribute<'_>>> {
    let array = ArrayAttribute::try_from(attribute).ok()?;
    (0..array.len()).map(|i| array.element(i).ok()).collect()
}

/// A reassociation (`[[0, 1], [2]]`): an array of arrays of integer attributes.
pub fn reassociation(op: OperationRef<'_, '_>) -> Option<Vec<Vec<usize>>> {
    array(op, "reassociation")?
        .into_iter()
        .map(|group| {
            array_elements(group)?
                .into_iter()
                .map(|dim| {
                    let value = IntegerAttribute::try_from(dim).ok()?.value();
                    usize::try_from(value).ok()
                })
                .collect()
        })
        .collect()
}

/// The map held by an affine map attribute; `None` for any other attribute.
pub fn affine_map(attribute: Attribute<'_>) -> Option<AffineMap<'_>> {
    if !attribute.is_affine_map() {
        return None;
    }
    // SAFETY: the attribute is a live AffineMapAttr (checked just above), owned by the context
    // of lifetime 'c; mlirAffineMapAttrGetValue returns the map it holds, which is uniqued in
    // the same context and so lives as long as the returned AffineMap<'c> claims.
    Some(unsafe { AffineMap::from_raw(mlir_sys::mlirAffineMapAttrGetValue(attribute.to_raw())) })
}

/// The raw 16-bit words of a dense elements attribute of `f16` or `bf16` elements, one per
/// element of the (logical) tensor.
fn dense_16bit_words(attribute: DenseElementsAttribute<'_>, elem: ElemType) -> Vec<u16> {
    let len = attribute.len();
    if len == 0 || !matches!(elem, ElemType::F16 | ElemType::BF16) {
        return Vec::new();
    }
    let stored = if attribute.is_splat() { 1 } else { len };
    let data = attribute.raw_data().cast::<u8>();
    if data.is_null() {
        return Vec::new();
    }
    // SAFETY: for a DenseElementsAttr whose element type is a 16-bit float (checked by the
    // caller through `elem`, and above), MLIR stores every element as one 16-bit word in host
    // byte order, contiguously, and a splat stores exactly one; `stored` is that element count,
    // so the `2 * stored` bytes read are inside the buffer. The buffer is owned by the context,
    // which outlives this call, and u8 has no alignment requirement.
    let bytes = unsafe { std::slice::from_raw_parts(data, 2 * stored) };
    let words: Vec<u16> = bytes
        .chunks_exact(2)
        .map(|b| u16::from_ne_bytes([b[0], b[1]]))
        .collect();
    if stored == 1 { vec![words[0]; len] } else { words }
}

/// Element `i` of a dense attribute of integer or f32 elements, through the accessor of the
/// exact storage width (MLIR's accessors require it).
fn stored_element(dense: &DenseElementsAttribute<'_>, elem: ElemType, i: usize) -> Result<Scalar, String> {
    let value = match elem {
        ElemType::Int(IntType::I1) => dense.bool_element(i).map(Scalar::bool),
        ElemType::Int(IntType::I8) => dense.i8_element(i).map(|v| Scalar::Int(IntType::I8, i64::from(v))),
        ElemType::Int(IntType::I32) => dense.i32_element(i).map(|v| Scalar::Int(IntType::I32, i64::from(v))),
        ElemType::Int(IntType::I64) => dense.i64_element(i).map(|v| Scalar::Int(IntType::I64, v)),
        // index elements are stored in 64 bits; the u64 is their two's complement pattern.
        ElemType::Int(IntType::Index) => dense.index_element(i).map(|v| Scalar::Int(IntType::Index, v as i64)),
        ElemType::F32 => dense.f32_element(i).map(Scalar::F32),
        ElemType::Int(IntType::I4) | ElemType::F16 | ElemType::BF16 => {
            return Err(format!(
                "dense constants of {elem} elements are not read element by element"
            ));
        }
    };
    value.map_err(|e| format!("cannot read dense {elem} elements: {e}"))
}

/// Every element of a dense elements attribute whose element type is `elem`, in row-major
/// order (a splat is expanded). Fails for element types it does not read (`i4`) and for
/// attributes that are not plain dense elements (e.g. `dense_resource`).
pub fn dense_values(attribute: Attribute<'_>, elem: ElemType) -> Result<Vec<Scalar>, String> {
    let dense = DenseElementsAttribute::try_from(attribute)
        .map_err(|_| format!("value {attribute} is not a dense elements attribute"))?;
    match TypeDesc::of(attribute.r#type()) {
        TypeDesc::Tensor { elem: stored, .. } if stored == elem => {}
        other => return Err(format!("a value of type {} for a tensor of {elem}", other.name())),
    }
    let len = dense.len();
    if len > MAX_ELEMENTS {
        return Err(format!(
            "the constant has {len} elements, above the interpreter's limit of {MAX_ELEMENTS}"
        ));
    }
    let values: Vec<Scalar> = match elem {
        ElemType::Int(IntType::I4) => {
            return Err("dense constants of i4 elements are not supported".into());
        }
        ElemType::F16 => dense_16bit_words(dense, elem)
            .into_iter()
            .map(|w| Scalar::F16(f16::from_bits(w)))
            .collect(),
        ElemType::BF16 => dense_16bit_words(dense, elem)
            .into_iter()
            .map(|w| Scalar::BF16(bf16::from_bits(w)))
            .collect(),
        _ if dense.is_splat() && len > 0 => vec![stored_element(&dense, elem, 0)?; len],
        _ => (0..len)
            .map(|i| stored_element(&dense, elem, i))
            .collect::<Result<_, _>>()?,
    };
    if values.len() != len {
        return Err(format!(
            "read {} of the {len} elements of a dense {elem} attribute",
            values.len()
        ));
    }
    Ok(values)
}
