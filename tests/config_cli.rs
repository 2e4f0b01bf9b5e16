//! `check-config` and `run` against config files (SPEC §7, §8): unknown keys are errors at
//! `file:line:column`, a valid config prints a summary with secrets redacted.

use crate::util::run_cli;

/// A literal secret that must never be printed.
const SECRET: &str = "tok-Literal-S3cret-9f2c71";

fn write_config(dir: &std::path::Path, text: &str) -> String {
    let path = dir.join("edgehook.toml");
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_string()
}

fn with_unknown_key(dir: &std::path::Path) -> String {
    // The typo is on line 6, column 1.
    let text = format!(
        "[daemon]\nstate_dir = {:?}\nadmin_socket = {:?}\n\n[ingest]\nsokcet = {:?}\n",
        dir.join("state"),
        dir.join("admin.sock"),
        dir.join("edgehook.sock"),
    );
    write_config(dir, &text)
}

#[test]
fn check_config_reports_unknown_key_with_position() {
    let dir = tempfile::tempdir().unwrap();
    let path = with_unknown_key(dir.path());
    let (code, stdout, stderr) = run_cli(&["check-config", "--config", &path], None);
    assert_eq!(code, 1, "stdout: {stdout}\nstderr: {stderr}");
    assert!(stderr.contains(&format!("{path}:6:1:")), "{stderr}");
    assert!(stderr.contains("sokcet"), "names the key: {stderr}");
}

#[test]
fn run_refuses_config_with_unknown_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = with_unknown_key(dir.path());
    let (code, _, stderr) = run_cli(&["run", "--config", &path], None);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains(&format!("{path}:6:1:")), "{stderr}");
    assert!(stderr.contains("sokcet"), "{stderr}");
    assert!(
        !dir.path().join("edgehook.sock").exists(),
        "nothing was bound"
    );
}

#[test]
fn check_config_accepts_valid_config_and_redacts_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        r#"[daemon]
state_dir = {state:?}
admin_socket = {admin:?}

[ingest]
socket = {socket:?}

[[endpoint]]
name = "spark"
url = "https://spark.example.com/hooks"
events = ["Upload*"]

[endpoint.auth]
type = "bearer"
token = "{SECRET}"
"#,
        state = dir.path().join("state"),
        admin = dir.path().join("admin.sock"),
        socket = dir.path().join("edgehook.sock"),
    );
    let path = write_config(dir.path(), &text);
    let (code, stdout, stderr) = run_cli(&["check-config", "--config", &path], None);
    assert_eq!(code, 0, "stdout: {stdout}\nstderr: {stderr}");
    assert!(
        stdout.contains("spark"),
        "the summary lists the endpoint: {stdout}"
    );
    assert!(
        stdout.contains("spark.example.com"),
        "and its URL: {stdout}"
    );
    assert!(stdout.contains("is valid"), "{stdout}");
    assert!(
        !stdout.contains(SECRET) && !stderr.contains(SECRET),
        "secret leaked:\n{stdout}\n{stderr}"
    );
    assert!(
        !dir.path().join("state").exists(),
        "check-config creates nothing"
    );
}
