//! Settings a reload cannot apply: read once at start (the ingest connection limits are
//! the size of semaphores the listeners were built with; the shutdown deadline belongs to
//! the dispatcher that stops the workers). A reload that changes them still applies the
//! rest; these keys are reported (log, `edgehook reload`, `status`) until a restart.
//! `daemon.state_dir` is different: a reload that changes it is refused.

use super::Config;

/// The keys whose value in `new` differs from the one the daemon started with.
pub fn restart_keys(started: &Config, new: &Config) -> Vec<&'static str> {
    let mut keys = Vec::new();
    if new.ingest.max_connections != started.ingest.max_connections {
        keys.push("ingest.max_connections");
    }
    if new.daemon.shutdown_timeout != started.daemon.shutdown_timeout {
        keys.push("daemon.shutdown_timeout");
    }
    keys
}

/// `"; restart edgehook to apply …"` for a reload's answer, or nothing.
pub fn note(keys: &[&str]) -> String {
    if keys.is_empty() {
        return String::new();
    }
    format!(
        "; restart edgehook to apply {} (they keep their values from the start until then)",
        keys.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn config(text: &str) -> Config {
        super::super::parse(text, Path::new("/etc/edgehook/edgehook.toml"))
            .unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn only_changed_start_time_keys_are_listed() {
        let started = config("[daemon]\nshutdown_timeout = \"10s\"\n");
        assert!(restart_keys(
            &started,
            &config("[daemon]\nshutdown_timeout = \"10s\"\n[queue]\nmax_bytes = \"2GiB\"\n")
        )
        .is_empty());
        assert_eq!(
            restart_keys(
                &started,
                &config("[daemon]\nshutdown_timeout = \"30s\"\n[ingest]\nmax_connections = 10\n")
            ),
            ["ingest.max_connections", "daemon.shutdown_timeout"]
        );
    }
}
