//! A compiler per fuzzing thread, replaced every so many inputs: MLIR uniques every type and
//! attribute it sees in its context and never frees them, so one context that parses millions of
//! inputs grows without bound.

use gmmfr::Compiler;
use std::cell::RefCell;

thread_local! {
    static COMPILER: RefCell<(Option<Compiler>, u32)> = const { RefCell::new((None, 0)) };
}

/// Runs `f` with this thread's compiler (made by `make`, fresh after `inputs_per_context` inputs),
/// then drops the diagnostics it recorded.
pub fn with_compiler(make: fn() -> Compiler, inputs_per_context: u32, f: impl FnOnce(&Compiler)) {
    COMPILER.with(|cell| {
        let mut state = cell.borrow_mut();
        if state.0.is_none() || state.1 >= inputs_per_context {
            state.0 = None;
            state.0 = Some(make());
            state.1 = 0;
        }
        state.1 += 1;
        let Some(compiler) = state.0.as_ref() else { return };
        f(compiler);
        compiler.context().diagnostics().take();
    });
}
