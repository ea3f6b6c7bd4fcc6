# What the deployment tests need (docs/deployment.md): a Debian root made with debootstrap, for
# the install script's test (run in it with chroot); a slimmer one imported into podman as the
# base image deploy/container/Containerfile names (no image registry is reachable here:
# make_base_image); podman, which builds and runs those images without a Docker engine;
# podman-compose, which checks the compose file; python-hcl2, which parses the Terraform
# example.

# Where the Debian root is kept between runs (made once: about 30 s, 210 MB).
LOOKOUT_DEBIAN_ROOT="${LOOKOUT_DEBIAN_ROOT:-$PWD/target/deploy/bookworm}"
export LOOKOUT_DEBIAN_ROOT

install_deploy_peers() {
  local missing=()
  command -v debootstrap >/dev/null || [ -x /usr/sbin/debootstrap ] || missing+=(debootstrap)
  command -v podman >/dev/null || missing+=(podman)
  command -v runc >/dev/null || [ -x /usr/sbin/runc ] || missing+=(runc)
  command -v podman-compose >/dev/null || missing+=(podman-compose)
  command -v systemd-analyze >/dev/null || missing+=(systemd)
  if [ ${#missing[@]} -gt 0 ]; then
    echo "installing ${missing[*]} (Debian's packages)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive RUNLEVEL=1 apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
  export PATH="$PATH:/usr/sbin"
  # podman here: runc (crun's cgroup setup fails in this sandbox), no default ulimits (the
  # sandbox refuses to raise them); host networking is asked for per container.
  export CONTAINERS_CONF="$PWD/deploy/test/containers.conf"
  install_deploy_venv
  make_debian_root
  make_base_image
  echo "podman $(podman --version | awk '{print $3}'), debootstrap root $LOOKOUT_DEBIAN_ROOT"
}

# A Debian bookworm root (minbase, with curl and ca-certificates so an install command can run
# in it), made once; a half-made one (no marker) is made again.
make_debian_root() {
  local dir="$LOOKOUT_DEBIAN_ROOT"
  [ -f "$dir/.lookout-complete" ] && return 0
  echo "making a Debian root in $dir (debootstrap, about 30 s)"
  rm -rf "$dir"
  mkdir -p "$(dirname "$dir")"
  debootstrap --variant=minbase --include=curl,ca-certificates bookworm "$dir" \
    http://deb.debian.org/debian >"$dir.log" 2>&1 || {
    tail -n 20 "$dir.log"
    echo "debootstrap failed (log: $dir.log)" >&2
    return 1
  }
  touch "$dir/.lookout-complete"
}

# podman-compose and python-hcl2 (PyPI) in a virtual environment of their own, where
# tests/tests/compose.rs and terraform.rs look for it (LOOKOUT_DEPLOY_VENV). Debian's
# podman-compose (1.0.3) has no `config` command. Pinned: a test whose tool changes under it
# is no oracle.
PODMAN_COMPOSE_VERSION=1.6.0
PYTHON_HCL2_VERSION=8.1.4
install_deploy_venv() {
  local venv="$HOME/.cache/lookout/deploy"
  if ! "$venv/bin/podman-compose" --version 2>/dev/null | grep -q "podman-compose version $PODMAN_COMPOSE_VERSION" ||
    ! "$venv/bin/pip" show python-hcl2 2>/dev/null | grep -q "^Version: $PYTHON_HCL2_VERSION$"; then
    echo "installing podman-compose $PODMAN_COMPOSE_VERSION and python-hcl2 $PYTHON_HCL2_VERSION (PyPI)"
    python3 -c 'import ensurepip' 2>/dev/null || {
      apt-get update -qq
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3-venv >/dev/null
    }
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q --disable-pip-version-check \
      "podman-compose==$PODMAN_COMPOSE_VERSION" "python-hcl2==$PYTHON_HCL2_VERSION"
  fi
  export LOOKOUT_DEPLOY_VENV="$venv"
}

# The base image the Containerfile builds on here (deploy/container/Containerfile names
# docker.io/library/debian:bookworm-slim, which no registry here can give): a Debian bookworm
# minbase root, trimmed as Docker Hub's slim image is (no documentation, manuals or locales,
# no apt lists), imported into podman under that name. The root is cached under target/deploy/
# and the image kept between runs; both are made again when missing (about 30 s).
LOOKOUT_BASE_IMAGE="${LOOKOUT_BASE_IMAGE:-docker.io/library/debian:bookworm-slim}"
export LOOKOUT_BASE_IMAGE
make_base_image() {
  local dir="${LOOKOUT_SLIM_ROOT:-$PWD/target/deploy/bookworm-slim}"
  if podman image exists "$LOOKOUT_BASE_IMAGE" &&
    [ "$(podman image inspect --format '{{index .Labels "org.lookout.base"}}' "$LOOKOUT_BASE_IMAGE")" = minbase ]; then
    return 0
  fi
  if [ ! -f "$dir/.lookout-complete" ]; then
    echo "making a slim Debian root in $dir (debootstrap, about 30 s)"
    rm -rf "$dir"
    mkdir -p "$(dirname "$dir")"
    debootstrap --variant=minbase bookworm "$dir" http://deb.debian.org/debian >"$dir.log" 2>&1 || {
      tail -n 20 "$dir.log"
      echo "debootstrap failed (log: $dir.log)" >&2
      return 1
    }
    rm -rf "$dir"/usr/share/doc/* "$dir"/usr/share/man/* "$dir"/usr/share/info/* \
      "$dir"/usr/share/locale/* "$dir"/var/lib/apt/lists/* "$dir"/var/cache/apt/*.bin \
      "$dir"/var/cache/apt/archives/*.deb "$dir"/var/log/*.log "$dir"/var/log/apt/*
    touch "$dir/.lookout-complete"
  fi
  echo "importing $dir as $LOOKOUT_BASE_IMAGE"
  tar -C "$dir" --exclude=./.lookout-complete -c . |
    podman import --quiet --change 'LABEL org.lookout.base=minbase' --change 'CMD ["bash"]' \
      - "$LOOKOUT_BASE_IMAGE" >/dev/null
}
