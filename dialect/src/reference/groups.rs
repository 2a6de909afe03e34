//! Decoding a `group_list` into the row ranges of each weight group.

use super::error::EvalError;
use super::operand;
use crate::tensor::{DType, Tensor};

/// `group_list_type` 0: inclusive prefix sums of the group sizes.
pub const GROUP_LIST_CUMSUM: i64 = 0;
/// `group_list_type` 1: group sizes (row counts).
pub const GROUP_LIST_COUNTS: i64 = 1;
/// `group_list_type` 2 (grouped matmul only): `(group index, size)` pairs.
pub const GROUP_LIST_PAIRS: i64 = 2;

/// Rows `[start, start + count)` of x use weight group `group`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GroupRange {
    /// Weight group index.
    pub group: usize,
    /// First row.
    pub start: usize,
    /// Number of rows.
    pub count: usize,
}

/// Row ranges in increasing row order, and the number of active rows (their total).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupRows {
    /// One range per group-list entry, consecutive, starting at row 0.
    pub ranges: Vec<GroupRange>,
    /// sum(group_list): rows at or past it are inactive and must not be read.
    pub active: usize,
}

/// Decodes an i64 `group_list` for `e` groups over `m` rows.
///
/// Types 0 and 1 need shape `(e,)`; type 2 (only when `allow_pairs`) needs `(e, 2)`. Counts must be
/// non-negative, prefix sums non-decreasing from 0, pair group indices in `[0, e)`, and the total
/// at most `m`; each violation is an error naming the entry.
pub fn group_rows(
    group_list: &Tensor,
    e: usize,
    group_list_type: i64,
    m: usize,
    allow_pairs: bool,
) -> Result<GroupRows, EvalError> {
    operand::dtype("group_list", group_list, &[DType::I64], "i64")?;
    let values = group_list.as_i64().unwrap_or(&[]);
    // (group, size) per entry, sizes validated non-negative.
    let mut sizes: Vec<(usize, i64)> = Vec::with_capacity(e);
    match group_list_type {
        GROUP_LIST_CUMSUM | GROUP_LIST_COUNTS => {
            operand::shape("group_list", group_list, &[e], "(e,)")?;
            let mut previous = 0i64;
            for (index, &value) in values.iter().enumerate() {
                let size = if group_list_type == GROUP_LIST_COUNTS {
                    if value < 0 {
                        return Err(EvalError::NegativeCount { index, value });
                    }
                    value
                } else {
                    if value < previous {
                        return Err(EvalError::CumsumDecreasing { index, value, previous });
                    }
                    // value >= previous >= 0, so the difference cannot overflow.
                    let size = value - previous;
                    previous = value;
                    size
                };
                sizes.push((index, size));
            }
        }
        GROUP_LIST_PAIRS if allow_pairs => {
            operand::shape("group_list", group_list, &[e, 2], "(e, 2)")?;
            for (pair, chunk) in values.chunks_exact(2).enumerate() {
                let (group, size) = (chunk[0], chunk[1]);
                let group = usize::try_from(group)
                    .ok()
                    .filter(|&g| g < e)
                    .ok_or(EvalError::GroupIndexOutOfRange {
                        pair,
                        value: group,
                        groups: e,
                    })?;
                if size < 0 {
                    return Err(EvalError::NegativeCount {
                        index: pair,
                        value: size,
                    });
                }
                sizes.push((group, size));
            }
        }
        value => {
            return Err(EvalError::Attribute {
                name: "group_list_type",
                value,
                expected: if allow_pairs {
                    "0 (cumsum), 1 (counts) or 2 ((group, size) pairs)"
                } else {
                    "0 (cumsum) or 1 (counts)"
                },
            });
        }
    }
    let sum: i128 = sizes.iter().map(|&(_, s)| i128::from(s)).sum();
    if sum > m as i128 {
        return Err(EvalError::GroupSumExceedsM { sum, m });
    }
    let mut ranges = Vec::with_capacity(sizes.len());
    let mut start = 0usize;
    for (group, size) in sizes {
        // Every size is in [0, sum] and sum <= m, so these fit in usize.
        let count = size as usize;
        ranges.push(GroupRange { group, start, count });
        start += count;
    }
    Ok(GroupRows { ranges, active: start })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gl(v: Vec<i64>) -> Tensor {
        let n = v.len();
        Tensor::from_i64(vec![n], v).unwrap()
    }

    // Counts and the equivalent cumsum (with an empty group) decode to the same ranges.
    #[test]
    fn counts_and_cumsum_agree() {
        let a = group_rows(&gl(vec![2, 0, 3]), 3, 1, 6, false).unwrap();
        let b = group_rows(&gl(vec![2, 2, 5]), 3, 0, 6, false).unwrap();
        assert_eq!(a, b);
        assert_eq!(a.active, 5);
        assert_eq!(
            a.ranges[2],
            GroupRange {
                group: 2,
                start: 2,
                count: 3
            }
        );
    }

    // Negative counts, decreasing cumsums, a too-large sum and a wrong length are errors.
    #[test]
    fn precondition_errors() {
        assert_eq!(
            group_rows(&gl(vec![1, -1]), 2, 1, 9, false),
            Err(EvalError::NegativeCount { index: 1, value: -1 })
        );
        assert_eq!(
            group_rows(&gl(vec![4, 3]), 2, 0, 9, false),
            Err(EvalError::CumsumDecreasing {
                index: 1,
                value: 3,
                previous: 4
            })
        );
        let e = group_rows(&gl(vec![10, 9]), 2, 1, 16, false).unwrap_err();
        assert_eq!(e.to_string(), "sum(group_list) = 19 exceeds m = 16");
        assert!(matches!(
            group_rows(&gl(vec![1, 1, 1]), 2, 1, 9, false),
            Err(EvalError::Shape { .. })
        ));
        assert!(matches!(
            group_rows(&gl(vec![1, 1]), 2, 2, 9, false),
            Err(EvalError::Attribute { value: 2, .. })
        ));
        let huge = gl(vec![i64::MAX, i64::MAX]);
        assert!(matches!(
            group_rows(&huge, 2, 1, 9, false),
            Err(EvalError::GroupSumExceedsM { .. })
        ));
    }

    // Pairs are consumed in the listed order and their group index is range-checked.
    #[test]
    fn pairs() {
        let t = Tensor::from_i64(vec![2, 2], vec![1, 3, 0, 2]).unwrap();
        let r = group_rows(&t, 2, 2, 5, true).unwrap();
        assert_eq!(r.active, 5);
        assert_eq!((r.ranges[0].group, r.ranges[0].start), (1, 0));
        assert_eq!((r.ranges[1].group, r.ranges[1].start), (0, 3));
        let bad = Tensor::from_i64(vec![2, 2], vec![2, 3, 0, 2]).unwrap();
        assert!(matches!(
            group_rows(&bad, 2, 2, 5, true),
            Err(EvalError::GroupIndexOutOfRange { pair: 0, value: 2, .. })
        ));
    }
}
