//! Elementwise comparison of a result with an expected tensor, relative to the expected
//! magnitude (SPEC 1.1: compare with a relative tolerance of the output's magnitude).

use super::error::EvalError;
use crate::tensor::Tensor;

/// The outcome of [`compare`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Comparison {
    /// max |actual - expected| over all elements; infinite if any element is NaN or the two
    /// differ by an infinity.
    pub max_abs_error: f64,
    /// max |expected| over the finite-or-infinite, non-NaN expected elements.
    pub max_abs_expected: f64,
    /// `max_abs_error / max_abs_expected`; 0 when both are 0, infinite when only the error is
    /// non-zero or either is not finite.
    pub relative: f64,
    /// Flat index of the element with the largest error, if any element differs.
    pub worst_index: Option<usize>,
}

impl Comparison {
    /// True when the relative error is at most `tol`.
    pub fn within(&self, tol: f64) -> bool {
        self.relative <= tol
    }
}

/// Compares `actual` with `expected` elementwise in f64. Shapes must be equal; dtypes may differ
/// (both are widened). Elements equal as values (including equal infinities) have error 0; a NaN
/// in either tensor is an infinite error.
pub fn compare(actual: &Tensor, expected: &Tensor) -> Result<Comparison, EvalError> {
    if actual.shape() != expected.shape() {
        return Err(EvalError::CompareShape {
            actual: actual.shape().to_vec(),
            expected: expected.shape().to_vec(),
        });
    }
    let (a, e) = (actual.to_f64_vec(), expected.to_f64_vec());
    let mut max_abs_error = 0f64;
    let mut max_abs_expected = 0f64;
    let mut worst_index = None;
    for (i, (&av, &ev)) in a.iter().zip(&e).enumerate() {
        if !ev.is_nan() {
            max_abs_expected = max_abs_expected.max(ev.abs());
        }
        let err = if av == ev {
            0.0
        } else {
            let d = (av - ev).abs();
            if d.is_nan() { f64::INFINITY } else { d }
        };
        if err > max_abs_error {
            max_abs_error = err;
            worst_index = Some(i);
        }
    }
    let relative = if max_abs_error == 0.0 {
        0.0
    } else {
        let r = max_abs_error / max_abs_expected;
        if r.is_nan() { f64::INFINITY } else { r }
    };
    Ok(Comparison {
        max_abs_error,
        max_abs_expected,
        relative,
        worst_index,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(v: Vec<f32>) -> Tensor {
        let n = v.len();
        Tensor::from_f32(vec![n], v).unwrap()
    }

    // Relative error is max abs error over max abs expected, 0 when both are 0.
    #[test]
    fn relative_error() {
        let c = compare(&t(vec![1.0, -3.5]), &t(vec![1.0, -4.0])).unwrap();
        assert_eq!((c.max_abs_error, c.max_abs_expected, c.relative), (0.5, 4.0, 0.125));
        assert_eq!(c.worst_index, Some(1));
        assert!(c.within(0.125) && !c.within(0.1));
        let z = compare(&t(vec![0.0]), &t(vec![0.0])).unwrap();
        assert_eq!(z.relative, 0.0);
        assert!(compare(&t(vec![1e-30]), &t(vec![0.0])).unwrap().relative.is_infinite());
    }

    // NaN anywhere is an infinite error; mismatched shapes are an error.
    #[test]
    fn nan_and_shape() {
        let c = compare(&t(vec![f32::NAN, 1.0]), &t(vec![0.0, 1.0])).unwrap();
        assert!(c.relative.is_infinite() && !c.within(1e9));
        let c = compare(&t(vec![1.0]), &t(vec![f32::NAN])).unwrap();
        assert!(c.relative.is_infinite());
        assert!(matches!(
            compare(&t(vec![1.0]), &t(vec![1.0, 2.0])),
            Err(EvalError::CompareShape { .. })
        ));
    }
}
