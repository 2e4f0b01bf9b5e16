//! Generates the man page and shell completions from the clap definition in `src/cli.rs`
//! (included here with `#[path]`, which is why that file may use only clap and std).
//!
//! Output, on every build whose CLI changed:
//! - `$OUT_DIR/` — `edgehook.8` and a page per subcommand (`edgehook-status.8`,
//!   `edgehook-dead-purge.8`, …, which `edgehook.8` refers to), `edgehook.bash`,
//!   `_edgehook` (zsh), `edgehook.fish`;
//! - the same files in `<target dir>/assets/` (e.g. `target/assets/edgehook.8`), a stable
//!   path for packaging (`OUT_DIR` has a hash in it).
//!
//! It also sets `EDGEHOOK_BUILD_UNIX_SECS` (`SOURCE_DATE_EPOCH` when set, for reproducible
//! builds; otherwise now): a wall clock earlier than that looks unset (`store/clock.rs`).
//!
//! The target dir is found as the nearest ancestor of `OUT_DIR` holding the
//! `CACHEDIR.TAG` file cargo writes at the root of every target dir; that works for
//! `--target <triple>`, `--profile`, `CARGO_TARGET_DIR` and `--target-dir` alike, which a
//! fixed number of `..` does not. Should cargo ever stop writing the tag, the layout
//! `<target>/<profile>/build/<pkg>-<hash>/out` is assumed instead.

use std::path::{Path, PathBuf};

use clap::CommandFactory;
use clap_complete::Shell;

#[allow(dead_code)]
#[path = "src/cli.rs"]
mod cli;

fn main() -> std::io::Result<()> {
    println!("cargo:rerun-if-changed=src/cli.rs");
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=SOURCE_DATE_EPOCH");
    println!("cargo:rustc-env=EDGEHOOK_BUILD_UNIX_SECS={}", build_time());
    let out_dir = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let assets = target_dir(&out_dir).join("assets");
    std::fs::create_dir_all(&assets)?;
    for dir in [&out_dir, &assets] {
        write_assets(dir)?;
    }
    Ok(())
}

fn write_assets(dir: &Path) -> std::io::Result<()> {
    let mut cmd = cli::Cli::command().disable_help_subcommand(true);
    cmd.build();
    write_pages(&cmd, dir)?;
    for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
        clap_complete::generate_to(shell, &mut cmd.clone(), "edgehook", dir)?;
    }
    Ok(())
}

/// `cmd`'s man page and its subcommands', section 8 (system administration).
fn write_pages(cmd: &clap::Command, dir: &Path) -> std::io::Result<()> {
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        write_pages(sub, dir)?;
    }
    clap_mangen::Man::new(cmd.clone())
        .section("8")
        .manual("System Manager's Manual")
        .generate_to(dir)?;
    Ok(())
}

/// The cargo target dir that `out_dir` lies in (see the module doc).
fn target_dir(out_dir: &Path) -> PathBuf {
    out_dir
        .ancestors()
        .find(|dir| dir.join("CACHEDIR.TAG").is_file())
        .or_else(|| out_dir.ancestors().nth(4))
        .unwrap_or(out_dir)
        .to_path_buf()
}

/// Unix seconds of this build: `SOURCE_DATE_EPOCH` (reproducible-builds.org) or now.
fn build_time() -> u64 {
    std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs())
        })
}
