//! What the benchmark reads about the daemon from `/proc`: CPU time (all threads, and by
//! thread name), bytes it caused to be written to storage (`/proc/<pid>/io`
//! `write_bytes`), peak RSS (`VmHWM`) and its thread count. These stay meaningful on a
//! busy machine, where events/s do not.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// `/proc` reports CPU times in USER_HZ, which Linux fixes at 100 for user space.
const TICKS_PER_SEC: f64 = 100.0;

/// One reading of a process.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// utime + stime of every thread, in ticks.
    pub cpu_ticks: u64,
    pub write_bytes: u64,
    /// CPU ticks by thread name (tokio's workers share one name).
    pub by_thread: BTreeMap<String, u64>,
}

impl Snapshot {
    pub fn read(pid: i32) -> Snapshot {
        let io = std::fs::read_to_string(format!("/proc/{pid}/io")).unwrap_or_default();
        let write_bytes = io
            .lines()
            .find_map(|l| l.strip_prefix("write_bytes:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        let mut by_thread = BTreeMap::new();
        let mut cpu_ticks = 0;
        for task in std::fs::read_dir(format!("/proc/{pid}/task"))
            .into_iter()
            .flatten()
        {
            let Ok(stat) = std::fs::read_to_string(task.expect("task entry").path().join("stat"))
            else {
                continue; // the thread ended meanwhile
            };
            // "tid (comm) state ppid ..." ; comm may hold spaces, so split at the last ')'.
            let Some((head, rest)) = stat.rsplit_once(')') else {
                continue;
            };
            let name = head.split_once('(').map_or("", |(_, n)| n).to_string();
            let fields: Vec<&str> = rest.split_whitespace().collect();
            // After the comm: state is field 3, utime 14, stime 15 (1-based, proc(5)).
            let ticks: u64 =
                fields[11].parse::<u64>().unwrap_or(0) + fields[12].parse::<u64>().unwrap_or(0);
            cpu_ticks += ticks;
            *by_thread.entry(name).or_insert(0) += ticks;
        }
        Snapshot {
            cpu_ticks,
            write_bytes,
            by_thread,
        }
    }

    /// CPU milliseconds per 1 000 events since `before`.
    pub fn cpu_ms_per_1k(&self, before: &Snapshot, events: usize) -> f64 {
        ticks_ms(self.cpu_ticks - before.cpu_ticks) * 1000.0 / events as f64
    }

    /// Bytes written per event since `before`.
    pub fn written_per_event(&self, before: &Snapshot, events: usize) -> f64 {
        (self.write_bytes - before.write_bytes) as f64 / events as f64
    }

    /// "name ms/1k, …" for the threads that used CPU since `before`, busiest first.
    pub fn threads_ms_per_1k(&self, before: &Snapshot, events: usize) -> String {
        let mut used: Vec<(&String, u64)> = self
            .by_thread
            .iter()
            .map(|(name, t)| (name, t - before.by_thread.get(name).copied().unwrap_or(0)))
            .filter(|(_, t)| *t > 0)
            .collect();
        used.sort_by_key(|(_, t)| std::cmp::Reverse(*t));
        used.iter()
            .map(|(name, t)| format!("{name} {:.1}", ticks_ms(*t) * 1000.0 / events as f64))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

fn ticks_ms(ticks: u64) -> f64 {
    ticks as f64 * 1000.0 / TICKS_PER_SEC
}

/// A line of `/proc/<pid>/status` in its own unit (kB for memory), e.g. `VmHWM`.
pub fn status_field(pid: i32, field: &str) -> Option<u64> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

/// Peak RSS of the process so far, in MiB.
pub fn peak_rss_mib(pid: i32) -> f64 {
    status_field(pid, "VmHWM").unwrap_or(0) as f64 / 1024.0
}

/// Samples a daemon's `VmRSS` (KiB) and thread count every 250 ms on a thread until
/// stopped.
pub struct Sampler {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<Vec<(u64, u64)>>,
}

impl Sampler {
    pub fn start(pid: i32) -> Sampler {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut samples = Vec::new();
            while !flag.load(Ordering::SeqCst) {
                if let (Some(rss), Some(threads)) =
                    (status_field(pid, "VmRSS"), status_field(pid, "Threads"))
                {
                    samples.push((rss, threads));
                }
                std::thread::sleep(Duration::from_millis(250));
            }
            samples
        });
        Sampler { stop, thread }
    }

    /// The samples: (RSS KiB, threads).
    pub fn finish(self) -> Vec<(u64, u64)> {
        self.stop.store(true, Ordering::SeqCst);
        self.thread.join().expect("sampler")
    }
}
