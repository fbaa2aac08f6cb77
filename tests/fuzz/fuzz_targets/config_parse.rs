//! `config::parse` on arbitrary text: it must return Ok or a located error, never panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data) {
        if let Err(e) = switchyard::config::parse(s, std::path::Path::new("fuzz.toml")) {
            // Rendering the error walks the source to locate keys: exercise it too.
            let _ = e.to_string();
        }
    }
});
