//! Socket files and peers (SPEC §3): `SO_PEERCRED` allow-lists on both sockets, a stale
//! socket file replaced at start, and a socket held by a live edgehook refused.

use std::os::unix::net::UnixListener;

use serde_json::json;

use crate::util::client::LineClient;
use crate::util::{event, Builder, ENDPOINTS};

/// Ids that are surely not the test's own (it runs as root here and in CI).
const OTHER: &str = "allowed_uids = [4242]\nallowed_gids = [4242]";

#[test]
fn peer_not_in_allow_list_is_forbidden_on_both_sockets() {
    assert_ne!(
        nix::unistd::getuid().as_raw(),
        4242,
        "the test needs a uid other than 4242"
    );
    assert_ne!(
        nix::unistd::getgid().as_raw(),
        4242,
        "the test needs a gid other than 4242"
    );
    let d = Builder::new()
        .lines_socket()
        .ingest(OTHER)
        .toml(ENDPOINTS)
        .start();

    let r = d.post_event(&event("Test.x", "http-forbidden", "{}"));
    assert_eq!(r.status, 403, "{r:?}");
    assert_eq!(r.code(), "forbidden");
    let uid = nix::unistd::getuid().as_raw();
    assert!(
        r.message().contains(&format!("uid {uid}")),
        "names the peer: {}",
        r.message()
    );

    let mut c = LineClient::connect(d.lines_socket().unwrap());
    // The daemon answers a forbidden peer at once and closes; the write may fail then.
    let _ = c.try_write(format!("{}\n", event("Test.x", "line-forbidden", "{}")).as_bytes());
    let reply = c.reply();
    assert_eq!(reply["ok"], false, "{reply}");
    assert_eq!(reply["error"]["code"], "forbidden", "{reply}");
    assert!(c.at_eof(), "a forbidden peer's connection is closed");

    assert_eq!(d.query_i64("SELECT COUNT(*) FROM events", []), 0);
}

#[test]
fn peer_in_allow_list_is_accepted() {
    let uid = nix::unistd::getuid().as_raw();
    let d = Builder::new()
        .lines_socket()
        .ingest(&format!(
            "allowed_uids = [4242, {uid}]\nallowed_gids = [4242]"
        ))
        .toml(ENDPOINTS)
        .start();
    assert_eq!(
        d.post_event(&event("Test.x", "http-allowed", "{}")).status,
        202
    );
    let mut c = LineClient::connect(d.lines_socket().unwrap());
    c.send(format!("{}\n", event("Test.x", "line-allowed", "{}")).into_bytes())
        .join()
        .unwrap();
    assert_eq!(c.reply(), json!({"ok": true, "id": "line-allowed"}));
    let peer: (i64, i64) = d
        .db()
        .query_row(
            "SELECT peer_uid, peer_pid FROM events WHERE id = 'http-allowed'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(
        peer,
        (i64::from(uid), i64::from(std::process::id())),
        "the sender is recorded"
    );
}

#[test]
fn stale_socket_file_is_replaced() {
    let b = Builder::new().lines_socket().toml(ENDPOINTS);
    for path in [b.socket_path().to_path_buf(), b.dir().join("lines.sock")] {
        drop(UnixListener::bind(&path).unwrap());
        assert!(
            path.exists(),
            "the stale socket file stays after its listener is gone"
        );
    }
    let d = b.start();
    assert_eq!(
        d.post_event(&event("Test.x", "after-stale", "{}")).status,
        202
    );
    let mut c = LineClient::connect(d.lines_socket().unwrap());
    c.send(format!("{}\n", event("Test.x", "after-stale-line", "{}")).into_bytes())
        .join()
        .unwrap();
    assert_eq!(c.reply()["ok"], true);
}

#[test]
fn second_instance_on_the_same_socket_is_refused() {
    let first = Builder::new().toml(ENDPOINTS).start();
    let (code, stderr) = Builder::new()
        .socket(first.socket())
        .toml(ENDPOINTS)
        .start_expecting_exit();
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("already running"), "{stderr}");
    assert!(
        stderr.contains(&first.socket().display().to_string()),
        "names the socket: {stderr}"
    );
    assert_eq!(
        first.health().status,
        200,
        "the first instance keeps serving"
    );
}
