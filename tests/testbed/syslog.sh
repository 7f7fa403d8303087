#!/usr/bin/env bash
# A syslog daemon for the audit tests, when the machine runs none: rsyslogd
# writes authpriv records to /var/log/auth.log.
#   syslog.sh start   start rsyslogd unless /dev/log already has a listener
#   syslog.sh stop    stop the rsyslogd this script started (by its pid file)
set -euo pipefail
pidfile=/run/kubesu-testbed-rsyslogd.pid
case ${1:-} in
  start)
    if [ -S /dev/log ] && python3 -c 'import socket; s=socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM); s.connect("/dev/log")' 2>/dev/null; then
      exit 0
    fi
    rm -f /dev/log
    rsyslogd -i "$pidfile"
    for _ in $(seq 50); do [ -S /dev/log ] && exit 0; sleep 0.1; done
    echo "syslog.sh: rsyslogd did not create /dev/log" >&2
    exit 1
    ;;
  stop)
    [ -f "$pidfile" ] || exit 0
    kill "$(cat "$pidfile")" 2>/dev/null || true
    rm -f "$pidfile"
    ;;
  *) echo "usage: $0 start|stop" >&2; exit 1 ;;
esac
