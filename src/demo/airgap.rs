//! `edgehook demo --air-gap`: the air-gapped round trip with real parts only. Two daemons
//! run in this process, each with its own temp dir, sockets and queue: site A, whose
//! endpoint cannot be reached, and site B, connected to the built-in HTTPS receiver. The
//! tour runs the real `export`, `import` and `receipt apply` commands against their admin
//! sockets, as an operator would with a USB stick between them.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::bail;

use super::pki;
use super::receiver::Receiver;
use super::tour::{endpoint, pending, say, seeds, send, show, start, SECRET, WAIT};
use crate::cli::{
    AdminArgs, ConfigArg, ExportArgs, ImportArgs, ReceiptAction, ReceiptApplyArgs, ReceiptArgs,
};
use crate::config;
use crate::transfer::client;

/// The demo's transfer key (both sites); real sites make their own (README).
const KEY: &str = "ZGVtby1vbmx5LXRyYW5zZmVyLWtleS0zMi1ieXRlcyE=";

pub async fn run() -> anyhow::Result<()> {
    let started = Instant::now();
    let dir = tempfile::Builder::new()
        .prefix("edgehook-demo-airgap-")
        .tempdir()?;
    let pki = pki::generate()?;
    let receiver = Receiver::start(&pki).await?;
    receiver.verify_with(SECRET);
    let ca = pki.write_ca(dir.path())?;
    let a = site(dir.path(), "site-a", "https://127.0.0.1:9/spark", &ca)?;
    let b = site(dir.path(), "site-b", &receiver.url("/spark"), &ca)?;
    say(&format!(
        "edgehook demo --air-gap — two relays in {}",
        dir.path().display()
    ));
    say("  site A: air-gapped, its endpoint spark is unreachable");
    say(&format!(
        "  site B: connected, its endpoint spark is {} (HTTPS, verifies signatures)",
        receiver.url("/spark")
    ));
    let (a_db, b_db) = (a.queue_db(), b.queue_db());
    let a_socket = a.ingest.socket.clone();
    let (a_admin, b_admin) = (a.daemon.admin_socket.clone(), b.daemon.admin_socket.clone());
    let site_a = start(a).await?;
    let site_b = start(b).await?;

    say("\n1. At site A: events arrive and queue, the link never comes");
    for (t, data) in seeds(0).into_iter().take(2) {
        send(&a_socket, t, data).await?;
    }
    say(&format!("   site A queue: {} pending", pending(&a_db)?));

    let bundle = dir.path().join("usb-stick.bundle");
    say("\n2. At site A: edgehook export --out usb-stick.bundle");
    print!("   ");
    client::export(ExportArgs {
        out: bundle.clone(),
        endpoints: Vec::new(),
        json: false,
        admin: admin(&a_admin),
    })
    .await?;

    let receipt = dir.path().join("usb-stick.bundle.receipt");
    say("\n3. At site B: edgehook import usb-stick.bundle (twice: the second queues nothing)");
    for _ in 0..2 {
        print!("   ");
        client::import(ImportArgs {
            file: bundle.clone(),
            receipt_out: Some(receipt.clone()),
            json: false,
            admin: admin(&b_admin),
        })
        .await?;
    }
    let got = receiver.wait_for(2, WAIT).await?;
    show(&got);

    say("\n4. Back at site A: edgehook receipt apply usb-stick.bundle.receipt");
    print!("   ");
    client::receipt(ReceiptArgs {
        action: ReceiptAction::Apply(ReceiptApplyArgs {
            file: receipt,
            json: false,
            admin: admin(&a_admin),
        }),
    })
    .await?;

    site_a.stop().await?;
    site_b.stop().await?;
    let ok = got.iter().filter(|r| r.signature_ok == Some(true)).count();
    let (left_a, left_b) = (pending(&a_db)?, pending(&b_db)?);
    say(&format!(
        "\nSummary: 2 events from site A delivered by site B in {} requests ({ok} signatures verified); \
         {left_a} left at A, {left_b} at B; {:.1}s in all.",
        got.len(),
        started.elapsed().as_secs_f64()
    ));
    if got.len() != 2 || ok != 2 || left_a != 0 || left_b != 0 {
        bail!("the air-gapped round trip did not deliver each event exactly once");
    }
    Ok(())
}

/// One site's config (its own state dir and sockets under `dir/name`), loaded.
fn site(dir: &Path, name: &str, url: &str, ca: &Path) -> anyhow::Result<config::Config> {
    let home = dir.join(name);
    std::fs::create_dir(&home)?;
    let spark = endpoint("spark", url, r#"["*"]"#, "", ca);
    let text = format!(
        "[daemon]\nstate_dir = \"state\"\nadmin_socket = \"admin.sock\"\nshutdown_timeout = \"2s\"\n\
         [ingest]\nsocket = \"edgehook.sock\"\n[transfer]\nkey = \"{KEY}\"\n{spark}"
    );
    let path = home.join("edgehook.toml");
    std::fs::write(&path, text)?;
    std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
    Ok(config::load(&path)?)
}

fn admin(socket: &Path) -> AdminArgs {
    AdminArgs {
        admin_socket: Some(PathBuf::from(socket)),
        config: ConfigArg { config: None },
    }
}
