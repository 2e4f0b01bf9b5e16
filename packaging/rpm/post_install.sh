# edgehook %post ($1: 1 install, 2 upgrade), as %systemd_post does: a first install
# applies the presets (Fedora/RHEL leave a new service disabled) and starts nothing, since
# the shipped config has no endpoint yet.
systemd-tmpfiles --create /usr/lib/tmpfiles.d/edgehook.conf >/dev/null 2>&1 || :
if [ -d /run/systemd/system ]; then
    systemctl daemon-reload >/dev/null 2>&1 || :
    if [ "$1" -eq 1 ]; then
        systemctl --no-reload preset edgehook.service edgehook.socket edgehook-admin.socket >/dev/null 2>&1 || :
    fi
fi
exit 0
