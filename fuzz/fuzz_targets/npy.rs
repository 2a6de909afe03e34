//! The .npy reader on arbitrary bytes: an error or a tensor, never a panic or a huge allocation.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(tensor) = gmmfr_dialect::npy::parse_npy(data, "fuzz.npy") {
        let _ = gmmfr_dialect::npy::encode_npy(&tensor);
    }
});
