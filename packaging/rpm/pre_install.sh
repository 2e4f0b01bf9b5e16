# edgehook %pre: the system user of packaging/sysusers.d/edgehook.conf (installed by this
# package, so not usable yet), created before the files so /etc/edgehook/edgehook.toml
# can belong to its group.
getent group edgehook >/dev/null || groupadd --system edgehook
getent passwd edgehook >/dev/null || useradd --system --gid edgehook \
    --home-dir /var/lib/edgehook --no-create-home --shell /sbin/nologin \
    --comment "edgehook webhook relay" edgehook
exit 0
