#!/bin/sh
# Inside a Debian container booted by systemd-nspawn (systemd is PID 1): install the vfud
# package, run vfud@.socket/vfud@.service as an administrator would (README "Running under
# systemd"), connect a client, stop it, read the journal. Results go to /results (a host dir):
#   steps.txt     one "name=value" line per observation, read by systemd_test.ts
#   *.txt, *.json raw outputs (probe, journal, status) for the test's messages
# No `set -e`: every step reports, the host side decides.
R=/results
exec >"$R/log.txt" 2>&1
set -x
say() { echo "$1=$2" >>"$R/steps.txt"; }
: >"$R/steps.txt"

say systemd "$(systemctl --version | head -1)"
say pid1 "$(cat /proc/1/comm)"
dpkg -i /vfud-e2e/vfud.deb >"$R/dpkg.txt" 2>&1
say dpkg_rc $?
say vfud_user "$(getent passwd vfud)"
say vfud_version "$(vfud --version)"
say man "$(test -f /usr/share/man/man1/vfud.1.gz && echo yes)"
say completion "$(test -f /usr/share/bash-completion/completions/vfud && echo yes)"
say descriptor "$(test -f /usr/share/vfio-user/50-vfud-virtio-blk.json && echo yes)"

# disk0: set up as the README says (the image belongs to vfud)
mkdir -p /etc/vfud
cat >/etc/vfud/disk0.conf <<'CONF'
VFUD_DEVICE=virtio-blk,file=/var/lib/vfud/disk0.img,serial=nspawn-disk0
VFUD_OPTIONS=--log-level=trace
CONF
install -d -o vfud -g vfud -m 0750 /var/lib/vfud
runuser -u vfud -- truncate -s 64M /var/lib/vfud/disk0.img
systemctl enable --now vfud@disk0.socket
say socket_active "$(systemctl is-active vfud@disk0.socket)"
say socket_file "$(stat -c '%F %U:%G %a' /run/vfud/disk0.sock)"
say service_before "$(systemctl is-active vfud@disk0.service)"

# The first connection starts the service; vfud probe is the client.
vfud probe /run/vfud/disk0.sock >"$R/probe.txt" 2>&1
say probe_rc $?
vfud probe --json /run/vfud/disk0.sock >"$R/probe.json" 2>"$R/probe-json.err"
say service_after "$(systemctl is-active vfud@disk0.service)"
systemctl show -p MainPID -p User -p StatusText -p NRestarts vfud@disk0.service >"$R/show.txt"
pid=$(systemctl show -p MainPID --value vfud@disk0.service)
say main_user "$(stat -c %U "/proc/$pid")"
say status_text "$(systemctl show -p StatusText --value vfud@disk0.service)"

systemctl stop vfud@disk0.service
say stop_rc $?
say exec_main_status "$(systemctl show -p ExecMainStatus --value vfud@disk0.service)"
say result "$(systemctl show -p Result --value vfud@disk0.service)"
say service_stopped "$(systemctl is-active vfud@disk0.service)"
# stopping the service leaves the socket listening: a new client starts it again
say socket_still "$(systemctl is-active vfud@disk0.socket)"
journalctl --sync
journalctl -u vfud@disk0.service -o json --no-pager >"$R/journal-disk0.json"
journalctl -u vfud@disk0.service -o cat --no-pager >"$R/journal-disk0.txt"
journalctl -u vfud@disk0.service -p err -o cat --no-pager >"$R/journal-disk0-err.txt"

# disk1: an image root created after the first start (the mistake of issue item 1): the service
# fails, and says why (the journal keeps it at priority err).
cat >/etc/vfud/disk1.conf <<'CONF'
VFUD_DEVICE=virtio-blk,file=/var/lib/vfud/disk1.img
CONF
truncate -s 16M /var/lib/vfud/disk1.img
chmod 0644 /var/lib/vfud/disk1.img
systemctl start vfud@disk1.socket
vfud probe --timeout=3000 /run/vfud/disk1.sock >"$R/probe-disk1.txt" 2>&1
say probe_disk1_rc $?
# Restart=on-failure tries again a few times, then the start limit stops it: wait (bounded).
i=0
while [ "$(systemctl is-active vfud@disk1.service)" != failed ] && [ $i -lt 100 ]; do
  sleep 0.2
  i=$((i + 1))
done
say disk1_result "$(systemctl show -p Result --value vfud@disk1.service)"
say disk1_exit "$(systemctl show -p ExecMainStatus --value vfud@disk1.service)"
journalctl --sync
journalctl -u vfud@disk1.service -p err -o cat --no-pager >"$R/journal-disk1-err.txt"
journalctl -u vfud@disk1.service -o json --no-pager >"$R/journal-disk1.json"
# ... and the documented fix works
systemctl stop vfud@disk1.socket vfud@disk1.service
systemctl reset-failed vfud@disk1.service
chown vfud:vfud /var/lib/vfud/disk1.img
systemctl start vfud@disk1.socket
vfud probe /run/vfud/disk1.sock >"$R/probe-disk1-fixed.txt" 2>&1
say probe_disk1_fixed_rc $?
systemctl stop vfud@disk1.service vfud@disk1.socket
say done yes
