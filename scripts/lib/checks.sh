# The peers of tests/tests/checks_more.rs (the grpc, websocket and domain checks): a gRPC health
# server (grpcio + grpcio-health-checking) and a WebSocket echo server (websockets), from PyPI,
# in a virtual environment of their own that the test finds through LOOKOUT_CHECKS_PYTHON. The
# RDAP server is the test's own script on Python's standard library. Pinned: a peer that changes
# under the code is no oracle.
GRPCIO_VERSION=1.85.1
WEBSOCKETS_VERSION=17.4
install_check_peers() {
  local venv="$HOME/.cache/lookout/checks"
  local want="grpcio==$GRPCIO_VERSION grpcio-health-checking==$GRPCIO_VERSION websockets==$WEBSOCKETS_VERSION"
  if [ "$(cat "$venv/.installed" 2>/dev/null)" != "$want" ]; then
    echo "installing $want (PyPI)"
    python3 -c 'import ensurepip' 2>/dev/null || {
      apt-get update -qq
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3-venv >/dev/null
    }
    rm -rf "$venv"
    python3 -m venv "$venv"
    # shellcheck disable=SC2086
    "$venv/bin/pip" install -q --disable-pip-version-check $want
    echo "$want" >"$venv/.installed"
  fi
  export LOOKOUT_CHECKS_PYTHON="$venv/bin/python"
  "$LOOKOUT_CHECKS_PYTHON" -c 'import grpc, grpc_health, websockets; print("grpcio", grpc.__version__, "websockets", websockets.__version__)'
}
