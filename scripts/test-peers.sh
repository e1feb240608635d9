#!/usr/bin/env bash
# The real peers the end-to-end tests start on loopback: redis-server (send/expect health
# checks), etcd (etcd discovery), dnsmasq (DNS discovery), prometheus (it scrapes /metrics; its
# promtool checks the exposition); haproxy (in front, sending PROXY protocol) and nginx with its
# stream module (a backend reading PROXY protocol), test/e2e-edge-peers.test.ts; and Debian's chromium, the browser the dashboard tests drive
# (playwright-core, test/helpers/browser.ts). Run by `npm test` (pretest) and
# .ci/run. Present: exit 0 at once. Missing and running as root with apt-get: install them.
# Otherwise: exit 1 naming the one command to run. Tests are never skipped for a missing peer,
# so a green run always means every real-peer test ran.
set -euo pipefail

# Paths as the test helpers spawn them: test/helpers/etcd.ts (ETCD_BINARY),
# test/helpers/dnsmasq.ts (DNSMASQ_BINARY), redis-server from PATH (test/e2e-health.test.ts),
# /usr/bin/chromium (test/helpers/browser.ts CHROMIUM_PATH).
# prometheus and promtool from PATH (test/metrics-prometheus.test.ts, test/metrics.test.ts).
missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
[ -x /usr/bin/etcd ] || missing+=(etcd-server)
[ -x /usr/sbin/dnsmasq ] || missing+=(dnsmasq)
[ -x /usr/bin/chromium ] || missing+=(chromium)
{ command -v prometheus >/dev/null 2>&1 && command -v promtool >/dev/null 2>&1; } || missing+=(prometheus)
[ -x /usr/sbin/haproxy ] || missing+=(haproxy)
{ [ -x /usr/sbin/nginx ] && [ -f /usr/lib/nginx/modules/ngx_stream_module.so ]; } || missing+=(nginx libnginx-mod-stream)
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$EUID" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "ringlb tests: installing the real peers they need: ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  # Debian starts the packaged services on install; each test starts its own instance on a
  # free loopback port, and a packaged dnsmasq would hold port 53.
  for service in redis-server etcd dnsmasq prometheus haproxy nginx; do service "$service" stop >/dev/null 2>&1 || true; done
  exit 0
fi

echo "ringlb tests need real peers that are not installed: ${missing[*]}" >&2
echo "Install them, then run the tests again:" >&2
echo "  sudo apt-get install -y --no-install-recommends ${missing[*]}" >&2
exit 1
