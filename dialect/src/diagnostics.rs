//! Capturing MLIR's diagnostics instead of letting MLIR print them to stderr.

use crate::location::SourceLoc;
use melior::diagnostic::{Diagnostic as MlirDiagnostic, DiagnosticSeverity};
use std::fmt;
use std::sync::{Arc, Mutex};

/// How serious a diagnostic is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    /// An error: the input is rejected.
    Error,
    /// A warning: the input is accepted.
    Warning,
    /// A remark (e.g. a fusion decision).
    Remark,
    /// A note attached to another diagnostic.
    Note,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Remark => "remark",
            Severity::Note => "note",
        })
    }
}

/// One located message, as printed to users: `file:line:col: error: message`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    /// Where.
    pub location: SourceLoc,
    /// How serious.
    pub severity: Severity,
    /// What.
    pub message: String,
    /// Attached notes, each with its own location.
    pub notes: Vec<Diagnostic>,
}

impl Diagnostic {
    /// An error at a location.
    pub fn error(location: SourceLoc, message: impl Into<String>) -> Self {
        Self {
            location,
            severity: Severity::Error,
            message: message.into(),
            notes: Vec::new(),
        }
    }

    fn from_mlir(diagnostic: &MlirDiagnostic<'_>) -> Self {
        let severity = match diagnostic.severity() {
            DiagnosticSeverity::Error => Severity::Error,
            DiagnosticSeverity::Warning => Severity::Warning,
            DiagnosticSeverity::Remark => Severity::Remark,
            DiagnosticSeverity::Note => Severity::Note,
        };
        let notes = (0..diagnostic.note_count())
            .filter_map(|index| diagnostic.note(index).ok())
            .map(|note| Diagnostic::from_mlir(&note))
            .collect();
        Self {
            location: SourceLoc::from_location(diagnostic.location()),
            severity,
            message: diagnostic.to_string(),
            notes,
        }
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}: {}", self.location, self.severity, self.message)?;
        for note in &self.notes {
            write!(f, "\n{note}")?;
        }
        Ok(())
    }
}

/// Diagnostics collected from one context. MLIR may report from its worker threads, hence
/// the mutex.
#[derive(Clone, Default)]
pub struct DiagnosticSink {
    collected: Arc<Mutex<Vec<Diagnostic>>>,
}

impl DiagnosticSink {
    /// Attaches a handler to `context` that records every diagnostic here and marks it handled,
    /// so that MLIR prints nothing itself.
    pub fn attach(&self, context: &melior::Context) {
        let collected = self.collected.clone();
        context.attach_diagnostic_handler(move |diagnostic| {
            let converted = Diagnostic::from_mlir(&diagnostic);
            if let Ok(mut list) = collected.lock() {
                list.push(converted);
            }
            true
        });
    }

    /// Removes and returns everything collected so far.
    pub fn take(&self) -> Vec<Diagnostic> {
        match self.collected.lock() {
            Ok(mut list) => std::mem::take(&mut *list),
            Err(poisoned) => std::mem::take(&mut *poisoned.into_inner()),
        }
    }

    /// Records a diagnostic produced on the Rust side.
    pub fn push(&self, diagnostic: Diagnostic) {
        if let Ok(mut list) = self.collected.lock() {
            list.push(diagnostic);
        }
    }
}
