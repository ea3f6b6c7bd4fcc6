# What tests/tests/integrations_containers.rs needs: podman (with runc, CONTAINERS_CONF and the
# Debian base image, which install_deploy_peers in deploy.sh installs and makes) serving the
# Docker Engine API with `podman system service`. Checked here once, so a sandbox where the
# service cannot run says so before the tests, not in the middle of them.

install_container_peers() {
  command -v podman >/dev/null && podman image exists docker.io/library/debian:bookworm-slim \
    || install_deploy_peers
  local dir pid
  dir="$(mktemp -d)"
  podman system service --time=0 "unix://$dir/api.sock" >"$dir/service.log" 2>&1 &
  pid=$!
  for _ in $(seq 100); do
    [ -S "$dir/api.sock" ] && break
    sleep 0.1
  done
  if ! curl -sf --unix-socket "$dir/api.sock" http://podman/_ping >/dev/null; then
    cat "$dir/service.log" >&2
    echo "podman system service does not answer on $dir/api.sock" >&2
    kill "$pid" 2>/dev/null
    return 1
  fi
  kill "$pid"
  wait "$pid" 2>/dev/null || true
  rm -rf "$dir"
  echo "podman $(podman --version | awk '{print $3}') serves the Docker API (containers tests)"
}
