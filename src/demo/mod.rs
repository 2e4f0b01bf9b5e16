//! The demo's parts: a throwaway PKI and a real HTTPS webhook receiver.
//!
//! `edgehook demo` and the integration tests share these, so what the tests exercise is
//! exactly what the demo shows: [`pki`] mints a CA with server and client certificates on the
//! fly, and [`receiver`] serves HTTP/1.1 and h2 over rustls, recording every request.
//! [`tour`] is `edgehook demo`; [`airgap`] is `edgehook demo --air-gap`.

pub mod airgap;
pub mod pki;
pub mod receiver;
pub mod tour;
