//! `config::parse` on any text: never a panic, and a config it accepts can be summarised
//! (`check-config`'s output) without one. Secrets referenced as `file:`/`env:` resolve
//! against this machine, as they would for `check-config`.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    if let Ok(config) = edgehook::config::parse(text, Path::new("/fuzz/edgehook.toml")) {
        let _ = edgehook::config::summary(&config);
    }
});
