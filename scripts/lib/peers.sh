# Installs the servers the probe tests run against (each test starts its own on a free port):
# Redis and dnsmasq from Debian's packages, aiosmtpd (an SMTP server) and prometheus_client from
# PyPI; and systemd's journald for the log agent's journal source.

PROMETHEUS_CLIENT_VERSION=0.26.0
install_probe_peers() {
  local missing=()
  command -v redis-server >/dev/null || missing+=(redis-server)
  command -v dnsmasq >/dev/null || [ -x /usr/sbin/dnsmasq ] || missing+=(dnsmasq-base)
  command -v setpriv >/dev/null || missing+=(util-linux)
  # promtool, which checks the collector's /metrics exposition.
  command -v promtool >/dev/null || missing+=(prometheus)
  # The exporter tests/tests/integrations_prometheus.rs scrapes through the agent.
  command -v prometheus-node-exporter >/dev/null || missing+=(prometheus-node-exporter)
  # nginx, which tests/tests/integrations_nginx.rs starts with its own configuration (its
  # stub_status module and access log).
  [ -x /usr/sbin/nginx ] || missing+=(nginx)
  # systemd-journald, journalctl and systemd-cat, for the journal source's test (which starts
  # its own journald where none runs).
  { [ -x /lib/systemd/systemd-journald ] && command -v journalctl >/dev/null && command -v systemd-cat >/dev/null; } || missing+=(systemd)
  if [ ${#missing[@]} -gt 0 ]; then
    echo "installing ${missing[*]} (Debian's packages)"
    apt-get update -qq
    # No service starts at install: the tests run their own servers.
    DEBIAN_FRONTEND=noninteractive RUNLEVEL=1 apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
  # dnsmasq lives in /usr/sbin, which a plain user's PATH may lack.
  export PATH="$PATH:/usr/sbin"
  if ! python3 -c 'import aiosmtpd' 2>/dev/null; then
    echo "installing aiosmtpd (PyPI)"
    python3 -m pip install -q --disable-pip-version-check --root-user-action=ignore aiosmtpd
  fi
  # The official Python client, whose OpenMetrics page tests/tests/integrations_prometheus.rs
  # scrapes through the agent. Pinned: its exposition is the oracle.
  if ! python3 -c 'import importlib.metadata as m, sys; sys.exit(m.version("prometheus_client") != sys.argv[1])' "$PROMETHEUS_CLIENT_VERSION" 2>/dev/null; then
    echo "installing prometheus_client $PROMETHEUS_CLIENT_VERSION (PyPI)"
    python3 -m pip install -q --disable-pip-version-check --root-user-action=ignore "prometheus_client==$PROMETHEUS_CLIENT_VERSION"
  fi
  echo "redis-server $(redis-server --version | awk '{print $3}' | cut -d= -f2), $(dnsmasq --version | head -n 1 | awk '{print $1, $3}'), aiosmtpd $(python3 -c 'import aiosmtpd; print(aiosmtpd.__version__)')"
}

# schemathesis (PyPI), which tests/tests/api_schema.rs runs against the collector's own API
# description; in a virtual environment of its own, where that test looks for it, so its many
# dependencies never meet the system's Python packages. Pinned: a new release generates other
# cases, and a test that changes under the code is no oracle.
SCHEMATHESIS_VERSION=4.32.5
install_api_peers() {
  local venv="$HOME/.cache/lookout/schemathesis"
  if ! "$venv/bin/schemathesis" --version 2>/dev/null | grep -q "$SCHEMATHESIS_VERSION"; then
    echo "installing schemathesis $SCHEMATHESIS_VERSION (PyPI)"
    python3 -c 'import ensurepip' 2>/dev/null || {
      apt-get update -qq
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3-venv >/dev/null
    }
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION"
  fi
  export LOOKOUT_SCHEMATHESIS="$venv/bin/schemathesis"
  "$LOOKOUT_SCHEMATHESIS" --version
}
