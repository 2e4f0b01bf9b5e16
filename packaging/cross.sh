#!/usr/bin/env bash
# ARM builds from the same source as x86_64: packages for arm64 and armhf, tests under
# qemu-user. Called by .ci/run; runs on a Debian/Ubuntu x86_64 host as root.
#
#   packaging/cross.sh packages [DEB]    .deb for arm64 and armhf, .rpm for aarch64, lintian;
#                                        each has the files of the amd64 DEB (and .rpm)
#   packaging/cross.sh test [FILTER…]    the integration tests (CI's subset, or FILTERs)
#                                        against the arm64 binary under qemu-aarch64
#   packaging/cross.sh smoke [FILTER…]   the same against the armhf binary (qemu-arm): start,
#                                        accept, deliver over TLS, stop
#   packaging/cross.sh env               print the exports (eval "$(packaging/cross.sh env)")
#
# What it installs (once; each step is skipped when already there): the rustup targets,
# Debian's cross gcc and libc packages (the C parts: SQLite, ring), qemu-user-static and
# binfmt-support, and registers the binfmt handlers. No per-arch code: the only
# differences are the linker, the C compiler and the strip/objcopy of each triple.
set -euo pipefail
cd "$(dirname "$0")/.."

ARM64=aarch64-unknown-linux-gnu
ARMHF=armv7-unknown-linux-gnueabihf

# The GNU prefix of a Rust triple: its gcc, strip and sysroot (/usr/<prefix>).
gnu_prefix() {
    case $1 in
        "$ARM64") echo aarch64-linux-gnu ;;
        "$ARMHF") echo arm-linux-gnueabihf ;;
        *) echo "cross.sh: unknown target $1" >&2; return 1 ;;
    esac
}

install_tools() {
    # Mounted before qemu-user-static's postinst tries to register its handlers.
    [ -e /proc/sys/fs/binfmt_misc/register ] \
        || mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
    rustup target list --installed | grep -qx "$ARM64" || rustup target add "$ARM64" >/dev/null
    rustup target list --installed | grep -qx "$ARMHF" || rustup target add "$ARMHF" >/dev/null
    local need=()
    command -v aarch64-linux-gnu-gcc >/dev/null || need+=(gcc-aarch64-linux-gnu libc6-dev-arm64-cross)
    command -v arm-linux-gnueabihf-gcc >/dev/null || need+=(gcc-arm-linux-gnueabihf libc6-dev-armhf-cross)
    command -v qemu-aarch64-static >/dev/null || need+=(qemu-user-static)
    command -v update-binfmts >/dev/null || need+=(binfmt-support)
    if [ ${#need[@]} -gt 0 ]; then
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
    fi
    # The integration tests start the edgehook binary as a child process, so running the
    # test binary under a cargo runner is not enough: the kernel must run ARM ELF files
    # itself, through binfmt_misc and qemu (as in a container without systemd-binfmt).
    for arch in aarch64 arm; do
        [ -e "/proc/sys/fs/binfmt_misc/qemu-$arch" ] || update-binfmts --enable "qemu-$arch"
    done
}

# The environment cargo, cc-rs and qemu need for every ARM triple.
exports() {
    local triple prefix var
    for triple in "$ARM64" "$ARMHF"; do
        prefix=$(gnu_prefix "$triple")
        var=$(echo "$triple" | tr 'a-z-' 'A-Z_')
        echo "export CARGO_TARGET_${var}_LINKER=$prefix-gcc"
        echo "export CC_${triple//-/_}=$prefix-gcc"
        echo "export AR_${triple//-/_}=$prefix-ar"
    done
}

deb_for() { # triple → builds the release binary and the .deb, prints the .deb's path
    cargo deb --target "$1" | grep '\.deb$'
}

lint() {
    local rc=0 out
    out=$(lintian --pedantic --fail-on error,warning "$1" 2>&1) || rc=$?
    printf '%s\n' "$out" | grep -v 'running with root privileges' || true
    [ "$rc" -eq 0 ] || { echo "lintian found errors or warnings in $1 (exit $rc)" >&2; exit 1; }
    echo "lintian: $1 clean"
}

# Each ARM package holds the same files, modes and units as the amd64 one: compare the
# file lists (`same_files deb|rpm native other`).
file_list() {
    case $1 in
        deb) dpkg-deb -c "$2" | awk '{print $1, $NF}' ;;
        rpm) rpm -qp --qf '[%{FILEMODES:perms} %{FILEFLAGS:fflags} %{FILENAMES}\n]' "$2" 2>/dev/null ;;
    esac
}
same_files() {
    diff <(file_list "$1" "$2") <(file_list "$1" "$3") \
        || { echo "$3 ships other files than $2" >&2; exit 1; }
    echo "same files as $2"
}

packages() { # [native .deb]: without it, the newest amd64 .deb in target/debian
    local native=${1:-} native_rpm deb rpm_file triple strip bin
    [ -n "$native" ] || native=$(ls -t target/debian/edgehook_*_amd64.deb 2>/dev/null | head -n1 || true)
    native_rpm=$(ls -t target/generate-rpm/edgehook-*.x86_64.rpm 2>/dev/null | head -n1 || true)
    if [ -z "$native" ] || [ -z "$native_rpm" ]; then
        # CI compares with the amd64 packages it built just before; by hand, say so.
        [ -z "${CI:-}" ] || { echo "cross.sh: no amd64 .deb and .rpm to compare with (CI)" >&2; exit 1; }
        echo "NOT CHECKED: same files as amd64 (build the amd64 .deb and .rpm first)" >&2
    fi
    for triple in "$ARM64" "$ARMHF"; do
        deb=$(deb_for "$triple")
        echo "$deb"
        readelf -h "target/$triple/release/edgehook" | grep -m1 Machine
        lint "$deb"
        [ -z "$native" ] || same_files deb "$native" "$deb"
    done
    # The .rpm for aarch64 from the same build, stripped as in .ci/run (the original is put
    # back for the dbgsym of a later `cargo deb`).
    triple=$ARM64
    strip="$(gnu_prefix "$triple")-strip"
    bin=target/$triple/release/edgehook
    cp "$bin" "$bin.unstripped"
    "$strip" --strip-debug "$bin"
    cargo generate-rpm --target "$triple" >/dev/null
    mv "$bin.unstripped" "$bin"
    rpm_file=$(ls -t target/"$triple"/generate-rpm/edgehook-*.aarch64.rpm | head -n1)
    echo "$rpm_file"
    rpm -qp --qf '%{ARCH}\n' "$rpm_file" 2>/dev/null | grep -qx aarch64
    [ -z "$native_rpm" ] || same_files rpm "$native_rpm" "$rpm_file"
}

# The integration tests are built and run natively; the binary they start (the daemon and
# every CLI command) is the ARM release build from `packages`, run by qemu through binfmt.
# So the tests check exactly what the package ships, without an ARM build of the tests.
run_tests_against() { # triple, sysroot, filters…
    local bin=$PWD/target/$1/release/edgehook sysroot=$2
    shift 2
    [ -x "$bin" ] || { echo "cross.sh: $bin missing: run \`$0 packages\` first" >&2; exit 1; }
    readelf -h "$bin" | grep -m1 Machine
    # One run through binfmt first: a missing handler fails here, with the reason.
    QEMU_LD_PREFIX=$sysroot "$bin" --version \
        || { echo "cross.sh: $bin does not run here (binfmt_misc handler, qemu-user-static?)" >&2; exit 1; }
    EDGEHOOK_TEST_BIN=$bin QEMU_LD_PREFIX=$sysroot cargo test --test integration -- "$@"
}

# The arm64 subset CI runs: ingest, delivery over TLS (with retries, outages and the wire
# format), crash without loss, reload, the admin CLI, signals and systemd's protocol.
ARM64_TESTS=(ingest_http:: deliver_tls:: deliver_wire:: crash:: deliver_crash::
    reload:: admin:: lifecycle::)
# The armhf smoke: start, accept an event, deliver it over TLS, stop on SIGTERM.
ARMHF_TESTS=(deliver_wire::delivered_events_leave_the_queue lifecycle::)

cmd=${1:-}
shift || true
case $cmd in
    env) exports ;;
    packages) install_tools; eval "$(exports)"; packages "$@" ;;
    test)
        install_tools
        [ $# -gt 0 ] || set -- "${ARM64_TESTS[@]}"
        run_tests_against "$ARM64" /usr/aarch64-linux-gnu "$@"
        ;;
    smoke)
        install_tools
        [ $# -gt 0 ] || set -- "${ARMHF_TESTS[@]}"
        run_tests_against "$ARMHF" /usr/arm-linux-gnueabihf "$@"
        ;;
    *) sed -n '2,15p' "$0" >&2; exit 2 ;;
esac
