# edgehook %preun ($1: 0 erase, 1 upgrade), as %systemd_preun does: on erase, disable and
# stop the service and its sockets (a graceful stop; the queue stays in /var/lib/edgehook).
if [ "$1" -eq 0 ] && [ -d /run/systemd/system ]; then
    systemctl --no-reload disable --now edgehook-lines.socket edgehook-admin.socket \
        edgehook.socket edgehook.service >/dev/null 2>&1 || :
fi
exit 0
