# The OpenTelemetry Python SDK and its OTLP/HTTP exporter (PyPI), the real sender that
# tests/tests/otlp_receiver.rs points at the agent's OTLP receiver; in a virtual environment of
# its own, where that test looks for it (LOOKOUT_OTLP_PYTHON). Pinned: the SDK's encoding is the
# oracle the receiver is tested against, so it changes only when this line does.
OTEL_PYTHON_VERSION=1.45.2
install_otlp_peers() {
  local venv="$HOME/.cache/lookout/otlp"
  if ! "$venv/bin/python" -c "import importlib.metadata as m, sys; sys.exit(m.version('opentelemetry-sdk') != '$OTEL_PYTHON_VERSION' or m.version('opentelemetry-exporter-otlp-proto-http') != '$OTEL_PYTHON_VERSION')" 2>/dev/null; then
    echo "installing opentelemetry-sdk and opentelemetry-exporter-otlp-proto-http $OTEL_PYTHON_VERSION (PyPI)"
    python3 -c 'import ensurepip' 2>/dev/null || {
      apt-get update -qq
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3-venv >/dev/null
    }
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q --disable-pip-version-check \
      "opentelemetry-sdk==$OTEL_PYTHON_VERSION" \
      "opentelemetry-exporter-otlp-proto-http==$OTEL_PYTHON_VERSION"
  fi
  export LOOKOUT_OTLP_PYTHON="$venv/bin/python"
  echo "opentelemetry-sdk $("$LOOKOUT_OTLP_PYTHON" -c 'import importlib.metadata as m; print(m.version("opentelemetry-sdk"))') (Python)"
}
