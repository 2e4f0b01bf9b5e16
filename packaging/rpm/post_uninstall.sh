# edgehook %postun ($1: 0 erase, 1 upgrade), as %systemd_postun_with_restart does: after an
# upgrade restart edgehook on the new binary, only if it was running.
if [ -d /run/systemd/system ]; then
    systemctl daemon-reload >/dev/null 2>&1 || :
    if [ "$1" -ge 1 ]; then
        systemctl try-restart edgehook.service >/dev/null 2>&1 || :
    fi
fi
exit 0
