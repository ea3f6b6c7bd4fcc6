# Starts a throw-away PostgreSQL for the tests and exports LOOKOUT_TEST_PG_URL (an admin URL;
# each test creates its own database). Installs Debian's postgresql package when it is missing.
# Source this file, then call start_postgres; the server stops when the shell exits.

stop_postgres() {
  if [ -n "${LOOKOUT_PG_DIR:-}" ] && [ -d "$LOOKOUT_PG_DIR/data" ]; then
    as_pg "$LOOKOUT_PG_BIN/pg_ctl" -D "$LOOKOUT_PG_DIR/data" -m immediate stop >/dev/null 2>&1 || true
    rm -rf "$LOOKOUT_PG_DIR"
  fi
}

as_pg() {
  # initdb refuses to run as root: as root, run the server as the postgres user.
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

start_postgres() {
  if [ -n "${LOOKOUT_TEST_PG_URL:-}" ]; then
    echo "using PostgreSQL at LOOKOUT_TEST_PG_URL"
    return 0
  fi
  LOOKOUT_PG_BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
  if [ -z "$LOOKOUT_PG_BIN" ] || [ ! -x "$LOOKOUT_PG_BIN/initdb" ]; then
    echo "installing PostgreSQL (Debian's postgresql package)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
    LOOKOUT_PG_BIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
  fi
  LOOKOUT_PG_DIR=$(mktemp -d /tmp/lookout-pg.XXXXXX)
  chmod 755 "$LOOKOUT_PG_DIR"
  [ "$(id -u)" = 0 ] && chown postgres:postgres "$LOOKOUT_PG_DIR"
  local port
  port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  as_pg "$LOOKOUT_PG_BIN/initdb" -D "$LOOKOUT_PG_DIR/data" -U postgres --auth=trust -E UTF8 >/dev/null
  # A self-signed certificate, so the tests can connect with sslmode=require.
  command -v openssl >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openssl >/dev/null
  openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=localhost \
    -keyout "$LOOKOUT_PG_DIR/server.key" -out "$LOOKOUT_PG_DIR/server.crt" >/dev/null 2>&1
  chmod 600 "$LOOKOUT_PG_DIR/server.key"
  [ "$(id -u)" = 0 ] && chown postgres:postgres "$LOOKOUT_PG_DIR/server.key" "$LOOKOUT_PG_DIR/server.crt"
  # fsync off by default: the tests create many databases, and PostgreSQL's own durability is
  # not what they test. Benchmarks set LOOKOUT_PG_FSYNC=on to measure with durable commits.
  as_pg "$LOOKOUT_PG_BIN/pg_ctl" -D "$LOOKOUT_PG_DIR/data" -l "$LOOKOUT_PG_DIR/log" -w \
    -o "-p $port -k $LOOKOUT_PG_DIR -c listen_addresses=127.0.0.1 -c fsync=${LOOKOUT_PG_FSYNC:-off} -c max_connections=300 \
        -c ssl=on -c ssl_cert_file=$LOOKOUT_PG_DIR/server.crt -c ssl_key_file=$LOOKOUT_PG_DIR/server.key" \
    start >/dev/null
  export LOOKOUT_PG_BIN LOOKOUT_PG_DIR
  export LOOKOUT_TEST_PG_URL="postgres://postgres@127.0.0.1:$port/postgres"
  trap stop_postgres EXIT
  echo "PostgreSQL $("$LOOKOUT_PG_BIN/postgres" --version | awk '{print $3}') on 127.0.0.1:$port"
}
