//! What a delivery worker shows the outside (status, metrics) and what it can be told
//! (wake, hold, release). One [`EndpointHandle`] per running worker.

use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use tokio::sync::mpsc;

use serde::{Deserialize, Serialize};

use crate::metrics::Histogram;
use crate::store::Hold;

/// An operator's instruction to a worker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Control {
    /// Probe now if offline (`edgehook wake`).
    Wake,
    /// Hold deliveries (`paused`), or release any hold (`None`: `edgehook resume`).
    Hold(Option<Hold>),
}

/// The endpoint's delivery state as status shows it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum State {
    #[default]
    Online,
    /// Connect-level failures; only the head is probed, next at `next_probe`.
    Offline {
        since: SystemTime,
        next_probe: SystemTime,
    },
    /// `gone` (410) or `paused` (operator).
    Held(Hold),
}

impl State {
    /// The name status shows.
    pub fn shown(&self) -> Shown {
        match self {
            State::Online => Shown::Online,
            State::Offline { .. } => Shown::Offline,
            State::Held(hold) => Shown::from(*hold),
        }
    }
}

/// An endpoint's state as `status` names it (the same strings on the admin wire).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Shown {
    Online,
    Offline,
    Paused,
    Gone,
    /// Configured, but no worker runs (between a reload's stop and start, or it failed).
    Stopped,
    /// Rows are queued for a name the config no longer has.
    Orphaned,
}

impl From<Hold> for Shown {
    fn from(hold: Hold) -> Shown {
        match hold {
            Hold::Paused => Shown::Paused,
            Hold::Gone => Shown::Gone,
        }
    }
}

/// A snapshot a worker keeps current.
#[derive(Debug, Clone, Default)]
pub struct Status {
    pub state: State,
    pub in_flight: usize,
    /// Attempts allowed in flight now (learned when `concurrency = "adaptive"`).
    pub concurrency_limit: usize,
    pub last_error: Option<String>,
    pub last_error_at: Option<SystemTime>,
    pub last_success_at: Option<SystemTime>,
    /// Upstream `Date` minus our clock, in seconds, when it was off by more than 5 minutes.
    pub clock_skew_secs: Option<i64>,
    pub delivered: u64,
    pub retried: u64,
    pub dead: u64,
}

/// The handle the rest of the daemon holds for one worker.
#[derive(Debug)]
pub struct EndpointHandle {
    pub name: String,
    status: Mutex<Status>,
    control: mpsc::UnboundedSender<Control>,
    /// How long attempts took (`edgehook_delivery_duration_seconds`).
    durations: Histogram,
    /// Set when the worker task ended abnormally (a panic): the watchdog stops pinging.
    crashed: std::sync::atomic::AtomicBool,
}

impl EndpointHandle {
    pub fn new(name: String) -> (EndpointHandle, mpsc::UnboundedReceiver<Control>) {
        let (control, rx) = mpsc::unbounded_channel();
        let handle = EndpointHandle {
            name,
            status: Mutex::new(Status::default()),
            control,
            durations: Histogram::default(),
            crashed: Default::default(),
        };
        (handle, rx)
    }

    /// Whether the worker died abnormally (its deliveries no longer progress).
    pub fn crashed(&self) -> bool {
        self.crashed.load(std::sync::atomic::Ordering::Relaxed)
    }

    pub(super) fn mark_crashed(&self) {
        self.crashed
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }

    pub fn status(&self) -> Status {
        self.status
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub fn update(&self, f: impl FnOnce(&mut Status)) {
        f(&mut self.status.lock().unwrap_or_else(|p| p.into_inner()));
    }

    /// Record how long one attempt took, from sending to its answer or failure.
    pub fn observe_attempt(&self, elapsed: Duration) {
        self.durations.observe(elapsed);
    }

    /// The attempt durations so far.
    pub fn durations(&self) -> crate::metrics::HistogramSnapshot {
        self.durations.snapshot()
    }

    /// Send an instruction; false if the worker has stopped.
    pub fn send(&self, control: Control) -> bool {
        self.control.send(control).is_ok()
    }
}
