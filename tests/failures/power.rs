//! Power loss (SPEC §5): with `durability = "full"` a 202 is sent only after the commit
//! that stored the event was synced to disk, so a power cut after the 202 cannot lose it.
//!
//! Power cannot be cut in a test, so the order of system calls is checked instead: the
//! daemon runs under `strace -f`, which records every thread's `read`s and `write`s on
//! sockets and every `fsync`/`fdatasync`, in the order the kernel saw them (strace
//! serialises the trace; a call another thread interrupts shows up as `<unfinished …>`
//! at its start and `<… resumed>` at its end, so each call has a start and an end line).
//! For every reply carrying `HTTP/1.1 202` the check finds the request it answers (the
//! last read on the same client socket before the reply) and requires an `fsync` or
//! `fdatasync` of the queue's WAL file that *started after* that read and *returned
//! before* the reply was written. Only the commit that followed the request can be that
//! sync, so the 202 waited for the disk.
//!
//! The same check on a `durability = "normal"` daemon must fail (WAL commits are not
//! synced there): that proves the check can tell the difference. Skipped with a note where
//! strace is not installed.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::{Arc, Barrier};

use crate::util::{client, event, tools, Builder, ENDPOINTS};

/// One system call: its name, first argument (the fd), the line numbers where it
/// started and returned, its return text, and the text of its arguments.
#[derive(Debug, Clone)]
struct Call {
    name: String,
    fd: Option<i64>,
    start: usize,
    end: usize,
    ret: String,
    args: String,
}

/// Parse `strace -f -o` output into calls, pairing `<unfinished …>` with `<… resumed>`.
fn parse(trace: &str) -> Vec<Call> {
    let mut calls = Vec::new();
    let mut open: HashMap<&str, Call> = HashMap::new();
    for (n, line) in trace.lines().enumerate() {
        // `PID  HH:MM:SS.micros  call…` (strace pads the pid with spaces).
        let Some((pid, rest)) = line.split_once(' ') else {
            continue;
        };
        let Some((_time, rest)) = rest.trim_start().split_once(' ') else {
            continue;
        };
        let rest = rest.trim_start();
        if let Some(resumed) = rest.strip_prefix("<... ") {
            if let Some(mut call) = open.remove(pid) {
                let (args, ret) = split_ret(resumed.split_once("resumed>").map_or("", |x| x.1));
                call.end = n;
                call.ret = ret;
                call.args.push_str(&args);
                calls.push(call);
            }
            continue;
        }
        let Some((name, args)) = rest.split_once('(') else {
            continue;
        };
        if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            continue;
        }
        let fd = args
            .split([',', ')', ' '])
            .next()
            .and_then(|a| a.parse().ok());
        let mut call = Call {
            name: name.to_string(),
            fd,
            start: n,
            end: n,
            ret: String::new(),
            args: String::new(),
        };
        if let Some(args) = args.strip_suffix("<unfinished ...>") {
            call.args = args.to_string();
            open.insert(pid, call);
        } else {
            let (args, ret) = split_ret(args);
            call.args = args;
            call.ret = ret;
            calls.push(call);
        }
    }
    calls.sort_by_key(|c| c.start);
    calls
}

/// `args)   = ret` → (args, ret); strace pads short calls with spaces before the `=`.
fn split_ret(text: &str) -> (String, String) {
    match text.rsplit_once(" = ") {
        Some((args, ret)) => {
            let args = args.trim_end();
            let args = args.strip_suffix(')').unwrap_or(args);
            (args.to_string(), ret.trim().to_string())
        }
        None => (text.to_string(), String::new()),
    }
}

/// For each 202 reply: `Ok` if a WAL sync started after its request was read and
/// returned before it was written, else `Err(description)`.
fn check_202s(calls: &[Call]) -> Vec<Result<(), String>> {
    let wal: HashSet<i64> = calls
        .iter()
        .filter(|c| c.name == "openat" && c.args.contains("queue.db-wal\""))
        .filter_map(|c| c.ret.parse().ok())
        .collect();
    assert!(!wal.is_empty(), "the trace shows the WAL being opened");
    let syncs: Vec<&Call> = calls
        .iter()
        .filter(|c| matches!(c.name.as_str(), "fsync" | "fdatasync"))
        .filter(|c| c.fd.is_some_and(|fd| wal.contains(&fd)) && c.ret == "0")
        .collect();
    let reads = |fd: i64, before: usize| {
        calls
            .iter()
            .filter(|c| matches!(c.name.as_str(), "read" | "recvfrom" | "recvmsg"))
            .filter(|c| c.fd == Some(fd) && c.end < before)
            .filter(|c| c.ret.parse::<i64>().is_ok_and(|n| n > 0))
            .map(|c| c.end)
            .max()
    };
    calls
        .iter()
        .filter(|c| matches!(c.name.as_str(), "write" | "writev" | "sendto" | "sendmsg"))
        .filter(|c| c.args.contains("HTTP/1.1 202"))
        .map(|reply| {
            let fd = reply.fd.expect("a write has an fd");
            let Some(request) = reads(fd, reply.start) else {
                return Err(format!("no request read before the 202 at line {}", reply.start));
            };
            if syncs.iter().any(|s| s.start > request && s.end < reply.start) {
                Ok(())
            } else {
                Err(format!(
                    "the 202 on fd {fd} at trace line {} has no WAL sync between its request (line {request}) and it",
                    reply.start + 1
                ))
            }
        })
        .collect()
}

/// Run a daemon with `durability` under strace, send events one after another and from
/// four concurrent clients, stop it, and check every 202.
fn traced_202s(strace: &Path, durability: &str) -> Vec<Result<(), String>> {
    let b = Builder::new()
        .toml(&format!("[queue]\ndurability = \"{durability}\""))
        .toml(ENDPOINTS);
    // Not beside the config file: the daemon watches that directory, and every line
    // strace wrote would wake it (and be traced in turn).
    let trace_dir = tempfile::tempdir().unwrap();
    let trace = trace_dir.path().join("strace.txt");
    let mut d = b
        .wrap(&[
            strace.to_str().unwrap(),
            "-f",
            "-tt",
            "-s",
            "48",
            "-e",
            "trace=openat,read,recvfrom,recvmsg,write,writev,sendto,sendmsg,fsync,fdatasync",
            "-o",
            trace.to_str().unwrap(),
        ])
        .start();
    for i in 0..20 {
        let r = d.post_event(&event("Test.power", &format!("{durability}-seq-{i}"), "{}"));
        assert_eq!(r.status, 202, "{r:?}");
    }
    let start = Arc::new(Barrier::new(4));
    let clients: Vec<_> = (0..4)
        .map(|c| {
            let socket = d.socket().to_path_buf();
            let start = start.clone();
            let durability = durability.to_string();
            std::thread::spawn(move || {
                start.wait();
                for i in 0..10 {
                    let body = event("Test.power", &format!("{durability}-par-{c}-{i}"), "{}");
                    let r = client::request(
                        &socket,
                        "POST",
                        "/v1/events",
                        Some("application/json"),
                        body.as_bytes(),
                    )
                    .unwrap();
                    assert_eq!(r.status, 202, "{r:?}");
                }
            })
        })
        .collect();
    for c in clients {
        c.join().unwrap();
    }
    d.stop();
    let results = check_202s(&parse(&std::fs::read_to_string(&trace).unwrap()));
    assert_eq!(results.len(), 60, "every 202 is in the trace");
    results
}

#[test]
fn full_durability_sends_202_only_after_the_commit_is_synced() {
    let Some(strace) = tools::strace("the 202-after-fsync check") else {
        return;
    };
    let full = traced_202s(&strace, "full");
    let early: Vec<&String> = full.iter().filter_map(|r| r.as_ref().err()).collect();
    assert!(
        early.is_empty(),
        "durability = \"full\": {} of 60 202s were not preceded by their commit's sync: {early:#?}",
        early.len()
    );

    // The check has teeth: with durability = "normal" WAL commits are not synced, and
    // (nearly) every 202 fails it.
    let normal = traced_202s(&strace, "normal");
    let unsynced = normal.iter().filter(|r| r.is_err()).count();
    assert!(
        unsynced >= 50,
        "durability = \"normal\": only {unsynced} of 60 202s lack a sync; the check cannot tell"
    );
}

#[test]
fn strace_lines_pair_up() {
    let trace = "\
10    08:00:00.000001 read(13,  <unfinished ...>
11    08:00:00.000002 fdatasync(7 <unfinished ...>
11    08:00:00.000002 fsync(8)           = 0
10 08:00:00.000003 <... read resumed>\"POST /v1/events HTTP/1.1\\r\\n\"..., 8192) = 120
11 08:00:00.000004 <... fdatasync resumed>) = 0
10 08:00:00.000005 writev(13, [{iov_base=\"HTTP/1.1 202 Accepted\\r\\n\"..., iov_len=150}], 1) = 150
10 08:00:00.000006 +++ exited with 0 +++
";
    let calls = parse(trace);
    let names: Vec<(&str, Option<i64>, usize, usize, &str)> = calls
        .iter()
        .map(|c| (c.name.as_str(), c.fd, c.start, c.end, c.ret.as_str()))
        .collect();
    assert_eq!(
        names,
        [
            ("read", Some(13), 0, 3, "120"),
            ("fdatasync", Some(7), 1, 4, "0"),
            ("fsync", Some(8), 2, 2, "0"),
            ("writev", Some(13), 5, 5, "150"),
        ]
    );
    // The sync started before the request was fully read: it cannot be the request's.
    let mut with_wal = calls.clone();
    with_wal.insert(
        0,
        Call {
            name: "openat".into(),
            fd: None,
            start: 0,
            end: 0,
            ret: "7".into(),
            args: "AT_FDCWD, \"/x/queue.db-wal\", O_RDWR".into(),
        },
    );
    assert!(check_202s(&with_wal)[0].is_err());
}
