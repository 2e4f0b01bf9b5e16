//! `check-config` approves exactly what `run` accepts (SPEC §8, issue 11): every check
//! `run` makes before it binds (groups exist, directories creatable, certificates usable,
//! secrets resolvable) fails `check-config` too, with the same message.

use std::path::Path;

use crate::util::delivery::{Endpoint, Upstream};
use crate::util::{run_cli, Builder};

/// A group no system has.
const NO_GROUP: &str = "edgehook-no-such-group";

/// `check-config` and `run` on `b`'s config both exit 1, and both say `expected`.
fn both_refuse(b: Builder, expected: &str) {
    let config = b.write_config();
    let (code, stdout, check) = run_cli(
        &[
            "check-config",
            "--config",
            config.to_str().expect("UTF-8 temp path"),
        ],
        None,
    );
    assert_eq!(code, 1, "check-config must refuse:\n{stdout}{check}");
    assert!(check.contains(expected), "check-config says:\n{check}");
    let (code, run) = b.start_expecting_exit();
    assert_eq!(code, 1, "{run}");
    let message = check.trim();
    assert!(
        run.contains(message),
        "run and check-config must say the same:\ncheck-config: {message}\nrun: {run}"
    );
}

#[test]
fn a_missing_socket_group_fails_both() {
    let b = Builder::new().ingest(&format!("socket_group = {NO_GROUP:?}"));
    both_refuse(
        b,
        &format!("group {NO_GROUP:?} (ingest.socket_group) does not exist"),
    );
}

#[test]
fn a_missing_admin_group_fails_both() {
    let b = Builder::new().daemon(&format!("admin_group = {NO_GROUP:?}"));
    both_refuse(
        b,
        &format!("group {NO_GROUP:?} (daemon.admin_group) does not exist"),
    );
}

#[test]
fn a_missing_state_group_fails_both() {
    let b = Builder::new().daemon(&format!("state_group = {NO_GROUP:?}"));
    both_refuse(
        b,
        &format!("group {NO_GROUP:?} (daemon.state_group) does not exist"),
    );
}

#[test]
fn a_state_dir_that_cannot_be_created_fails_both() {
    let b = Builder::new();
    let file = b.dir().join("not-a-dir");
    std::fs::write(&file, "").unwrap();
    let b = b.state_dir(&file.join("state"));
    both_refuse(b, &format!("{} is not a directory", file.display()));
}

#[test]
fn a_socket_directory_that_cannot_be_created_fails_both() {
    let b = Builder::new();
    let file = b.dir().join("not-a-dir");
    std::fs::write(&file, "").unwrap();
    let b = b.socket(&file.join("edgehook.sock"));
    both_refuse(
        b,
        &format!(
            "the directory of ingest.socket {} is not a directory",
            file.display()
        ),
    );
}

#[test]
fn an_unusable_ca_certificate_fails_both() {
    let up = Upstream::start();
    let b = Builder::new();
    // PEM that parses, around bytes that are no certificate.
    let ca = b.dir().join("ca.pem");
    std::fs::write(
        &ca,
        "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    let b = b.toml(&Endpoint::new("e", &up.url("/hook"), &ca).toml());
    both_refuse(b, &format!("tls.ca_file {}", ca.display()));
}

#[test]
fn an_unresolvable_secret_fails_both() {
    let up = Upstream::start();
    let b = Builder::new();
    let ca = up.write_ca(b.dir());
    let b = b.toml(
        &Endpoint::new("e", &up.url("/hook"), &ca)
            .table("[endpoint.signing]\nsecret = \"env:EDGEHOOK_NO_SUCH_VARIABLE\"")
            .toml(),
    );
    both_refuse(b, "EDGEHOOK_NO_SUCH_VARIABLE");
}

#[test]
fn a_valid_config_passes_both_and_check_config_creates_nothing() {
    let b = Builder::new();
    let config = b.write_config();
    let (code, stdout, stderr) = run_cli(
        &["check-config", "--config", config.to_str().unwrap()],
        None,
    );
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(
        !b.dir().join("state").exists(),
        "check-config creates nothing"
    );
    assert!(!Path::new(&b.dir().join("edgehook.sock")).exists());
    let mut d = b.start();
    d.stop();
}
