//! Turning MLIR locations into `file:line:col` for messages.

use melior::ir::Location;
use std::fmt;

/// A source position as users see it in messages.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SourceLoc {
    /// A position in a named file (1-based line and column, as MLIR records them).
    File {
        /// The file name recorded in the IR.
        file: String,
        /// Line, 1-based.
        line: usize,
        /// Column, 1-based.
        col: usize,
    },
    /// A whole file or directory (input that is not MLIR text, such as a case directory).
    Path(String),
    /// The IR carries no file position for this thing.
    Unknown,
}

impl SourceLoc {
    /// The most useful file position inside an MLIR location: the location itself if it is a
    /// file position, the child of a name location, the callee of a call site (where the op is
    /// written), or the first file position inside a fused location.
    pub fn from_location(location: Location<'_>) -> Self {
        Self::search(location, 0)
    }

    /// The call stack a location records (torch-mlir writes the Python stack as nested call
    /// sites): the innermost frame (where the op is written) first, then each caller outwards.
    /// A location without call sites gives its one position.
    pub fn call_stack(location: Location<'_>) -> Vec<Self> {
        let mut frames = Vec::new();
        Self::frames(location, &mut frames, 0);
        frames
    }

    fn frames(location: Location<'_>, frames: &mut Vec<Self>, depth: usize) {
        // The same bound as `search`: at most 64 levels of nesting and 64 frames per level.
        if depth > 64 {
            return;
        }
        let mut current = location;
        for _ in 0..64 {
            if current.is_name() {
                current = current.name_child_location();
                continue;
            }
            if current.is_call_site() {
                // The callee may itself be a call site (an inlined stack): its frames come first.
                Self::frames(current.call_site_callee(), frames, depth + 1);
                current = current.call_site_caller();
                continue;
            }
            let found = Self::search(current, 0);
            if found != SourceLoc::Unknown {
                frames.push(found);
            }
            break;
        }
    }

    fn search(location: Location<'_>, depth: usize) -> Self {
        // Locations are DAGs built by the parser or by passes; a depth bound keeps a
        // pathological (deeply nested) location from recursing without limit.
        if depth > 64 {
            return SourceLoc::Unknown;
        }
        if location.is_file_line_col_range() {
            return SourceLoc::File {
                file: location
                    .file_line_col_range_filename()
                    .as_string_ref()
                    .as_str()
                    .unwrap_or("<invalid utf-8>")
                    .to_string(),
                line: location.file_line_col_range_start_line(),
                col: location.file_line_col_range_start_column(),
            };
        }
        if location.is_name() {
            return Self::search(location.name_child_location(), depth + 1);
        }
        if location.is_call_site() {
            let callee = Self::search(location.call_site_callee(), depth + 1);
            if callee != SourceLoc::Unknown {
                return callee;
            }
            return Self::search(location.call_site_caller(), depth + 1);
        }
        if location.is_fused() {
            for index in 0..location.fused_num_locations() {
                let found = Self::search(location.fused_location(index), depth + 1);
                if found != SourceLoc::Unknown {
                    return found;
                }
            }
        }
        SourceLoc::Unknown
    }
}

impl fmt::Display for SourceLoc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SourceLoc::File { file, line, col } => write!(f, "{file}:{line}:{col}"),
            SourceLoc::Path(path) => f.write_str(path),
            SourceLoc::Unknown => write!(f, "<unknown>"),
        }
    }
}
