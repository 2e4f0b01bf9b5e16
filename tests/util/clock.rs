//! [`FakeClock`]: the daemon's wall clock moved while it runs, with libfaketime (Debian's
//! `faketime`) preloaded into it. The monotonic clocks stay real
//! (`FAKETIME_DONT_FAKE_MONOTONIC=1`), as on a box whose NTP or RTC steps the wall clock.
//!
//! libfaketime re-reads its timestamp file on every clock call (`FAKETIME_NO_CACHE=1`),
//! so [`FakeClock::set`] takes effect at once, in a running daemon or across a restart.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// Where Debian's `libfaketime` package puts the preload library (x86_64, aarch64).
fn libfaketime() -> PathBuf {
    let arch = std::env::consts::ARCH;
    PathBuf::from(format!(
        "/usr/lib/{arch}-linux-gnu/faketime/libfaketime.so.1"
    ))
}

/// The faketime spec file of one daemon.
pub struct FakeClock {
    file: PathBuf,
}

impl FakeClock {
    /// A clock file in `dir` that starts as `spec`, and the environment that makes a
    /// process use it; `None` (after a note) when libfaketime is not installed.
    ///
    /// # Panics
    /// When libfaketime is missing under CI ([`super::tools::missing`]; `.ci/run`
    /// installs `faketime`).
    pub fn new(dir: &Path, spec: &str) -> Option<(FakeClock, Vec<(OsString, OsString)>)> {
        let lib = libfaketime();
        if !lib.is_file() {
            let why = format!("{} is missing (apt-get install faketime)", lib.display());
            super::tools::missing("a wall-clock step", &why);
            return None;
        }
        let clock = FakeClock {
            file: dir.join("faketime.spec"),
        };
        clock.set(spec);
        let env = [
            ("LD_PRELOAD", lib.into_os_string()),
            (
                "FAKETIME_TIMESTAMP_FILE",
                clock.file.clone().into_os_string(),
            ),
            ("FAKETIME_NO_CACHE", "1".into()),
            ("FAKETIME_DONT_FAKE_MONOTONIC", "1".into()),
        ]
        .into_iter()
        .map(|(k, v): (&str, OsString)| (k.into(), v))
        .collect();
        Some((clock, env))
    }

    /// Move the wall clock: `"+0"` (the real time), `"-365d"`, `"+2d"` (offsets from the
    /// real time), or `"@1970-01-01 00:00:10"` (a start time that then runs on).
    pub fn set(&self, spec: &str) {
        // Written aside and renamed, so the daemon never reads half a spec.
        let tmp = self.file.with_extension("tmp");
        std::fs::write(&tmp, format!("{spec}\n")).expect("writing the faketime spec");
        std::fs::rename(&tmp, &self.file).expect("renaming the faketime spec");
    }
}
