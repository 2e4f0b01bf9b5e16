//! The queue's files are private (SPEC §12): state_dir 0700 and queue.db, -wal, -shm 0600
//! whatever the umask (0750/0640 with `daemon.state_group`); looser modes found at start
//! are tightened with a warning.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::util::{event, Builder, TestDaemon, ENDPOINTS};

/// Run the daemon under umask 022, as `edgehook run` typed in a root shell is.
const UMASK_022: [&str; 3] = ["sh", "-c", "umask 022; exec \"$0\" \"$@\""];

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .mode()
        & 0o7777
}

/// (path, mode) of the state dir and the three queue files, after a commit so all exist.
fn modes(d: &TestDaemon) -> Vec<(String, u32)> {
    static N: AtomicUsize = AtomicUsize::new(0);
    let id = format!("p-{}", N.fetch_add(1, Ordering::Relaxed));
    let r = d.post_event(&event("Test.private", &id, "{}"));
    assert_eq!(r.status, 202, "{r:?}");
    let db = d.state_dir.join("queue.db");
    let mut files = vec![d.state_dir.clone(), db.clone()];
    for suffix in ["-wal", "-shm"] {
        let mut name = db.clone().into_os_string();
        name.push(suffix);
        files.push(name.into());
    }
    files
        .iter()
        .map(|f| (f.display().to_string(), mode(f)))
        .collect()
}

fn expect(d: &TestDaemon, dir: u32, file: u32) {
    let got = modes(d);
    let want: Vec<u32> = vec![dir, file, file, file];
    assert_eq!(
        got.iter().map(|(_, m)| *m).collect::<Vec<_>>(),
        want,
        "modes (octal {dir:o}/{file:o} expected): {got:?}"
    );
}

#[test]
fn queue_files_are_private_under_umask_022() {
    let d = Builder::new().wrap(&UMASK_022).toml(ENDPOINTS).start();
    expect(&d, 0o700, 0o600);
}

#[test]
fn looser_modes_are_tightened_at_start_with_a_warning() {
    let mut d = Builder::new().toml(ENDPOINTS).start();
    modes(&d);
    d.stop();
    let db = d.state_dir.join("queue.db");
    std::fs::set_permissions(&d.state_dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o644)).unwrap();
    d.restart();
    expect(&d, 0o700, 0o600);
    let log = d.log();
    assert!(
        log.contains("tightened its mode") && log.contains("0755") && log.contains("0644"),
        "{log}"
    );
}

#[test]
fn state_group_gives_that_group_read_access() {
    let group = nix::unistd::Group::from_name("daemon")
        .unwrap()
        .expect("group daemon exists on Debian and Fedora");
    let d = Builder::new()
        .wrap(&UMASK_022)
        .daemon("state_group = \"daemon\"")
        .toml(ENDPOINTS)
        .start();
    expect(&d, 0o750, 0o640);
    for (path, _) in modes(&d) {
        let gid = std::fs::metadata(&path).unwrap().gid();
        assert_eq!(gid, group.gid.as_raw(), "{path} belongs to group daemon");
    }
}
