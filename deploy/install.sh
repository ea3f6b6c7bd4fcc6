#!/bin/sh
# Installs or upgrades the Lookout agent on this server, with one command:
#
#   curl -fsSL @URL@/install.sh | sudo sh -s -- --enroll-token TOKEN [--name NAME] [--labels k=v,...]
#
# The collector serves this script (GET /install.sh) with its own address, the CA its agents
# should trust and the systemd unit of its release filled in below; the template is
# deploy/install.sh in Lookout's sources and docs/deployment.md ("One command per server") says
# what it does. POSIX sh: dash, busybox and bash run it.
#
# What it does, in this order; nothing is installed until every check has passed:
#  1. downloads the agent for this machine (GET /downloads/lookout-agent-linux-<uname -m>),
#     checks it against its SHA-256 (GET /downloads/...sha256) and that it runs here;
#  2. first install (or --rewrite-config): writes /etc/lookout/agent.toml (no secret in it),
#     /etc/lookout/agent.env (mode 0600: LOOKOUT_ENROLL_TOKEN, read by the unit) and
#     /etc/lookout/ca.pem (when the collector names a CA), checked with `lookout-agent validate`;
#  3. enrols the agent (POST /v1/enroll) unless it has a credential already, and keeps the
#     credential in <data_dir>/credential (mode 0600): a wrong token stops here;
#  4. installs the binary to /usr/local/bin/lookout-agent and the unit to
#     /etc/systemd/system/lookout-agent.service;
#  5. with systemd running: daemon-reload, enable, restart. Without (a chroot, a container): says
#     so and does a dry run of the start (validate, and the command systemd would start).
# Run again, it upgrades in place: a new binary and unit; the configuration, the credential and
# the spool are kept (--rewrite-config writes the configuration anew, keeping the credential).
set -eu

# --- filled in by the collector that served this script ---
LOOKOUT_URL=@LOOKOUT_URL@
LOOKOUT_CA=@LOOKOUT_CA@
LOOKOUT_DATA_DIR=@LOOKOUT_DATA_DIR@
LOOKOUT_VERSION=@LOOKOUT_VERSION@
LOOKOUT_UNIT=@LOOKOUT_UNIT@
# --- end ---

BIN=/usr/local/bin/lookout-agent
CONF_DIR=/etc/lookout
CONF=$CONF_DIR/agent.toml
ENV_FILE=$CONF_DIR/agent.env
CA_FILE=$CONF_DIR/ca.pem
UNIT_FILE=/etc/systemd/system/lookout-agent.service

say() { printf 'lookout-install: %s\n' "$*"; }
die() {
	printf 'lookout-install: error: %s\n' "$*" >&2
	exit 1
}

usage() {
	cat <<EOF
Installs or upgrades the Lookout agent ($LOOKOUT_VERSION) for the collector at $LOOKOUT_URL.

  curl -fsSL $LOOKOUT_URL/install.sh | sudo sh -s -- --enroll-token TOKEN [options]

  --enroll-token TOKEN   the collector's [enrollment] token (or LOOKOUT_ENROLL_TOKEN in the
                         environment); needed for a first install
  --name NAME            the agent's name (default: this host's name, uname -n)
  --labels k=v,...       labels the agent claims (the collector's [enrollment] labels win)
  --lifecycle KIND       permanent or ephemeral (default: the collector's choice)
  --rewrite-config       write /etc/lookout/agent.toml anew (kept by default on a rerun)
  -h, --help             this text
EOF
}

token=${LOOKOUT_ENROLL_TOKEN:-}
name=
labels=
lifecycle=
rewrite=no
# `--key value` or `--key=value`.
need() { [ $# -ge 2 ] || die "$1 needs a value (--help lists the options)"; }
while [ $# -gt 0 ]; do
	case $1 in
	--enroll-token) need "$@"; token=$2; shift 2 ;;
	--enroll-token=*) token=${1#*=}; shift ;;
	--name) need "$@"; name=$2; shift 2 ;;
	--name=*) name=${1#*=}; shift ;;
	--labels) need "$@"; labels=$2; shift 2 ;;
	--labels=*) labels=${1#*=}; shift ;;
	--lifecycle) need "$@"; lifecycle=$2; shift 2 ;;
	--lifecycle=*) lifecycle=${1#*=}; shift ;;
	--rewrite-config) rewrite=yes; shift ;;
	-h | --help) usage; exit 0 ;;
	*) die "unknown option '$1' (--help lists the options)" ;;
	esac
done

[ "$(id -u)" = 0 ] || die "run it as root: curl -fsSL $LOOKOUT_URL/install.sh | sudo sh -s -- ..."
for tool in curl sha256sum uname mktemp sed cut; do
	command -v "$tool" >/dev/null 2>&1 || die "$tool is needed and not installed"
done
[ "$(uname -s)" = Linux ] || die "this script installs the agent on Linux; this is $(uname -s)"
arch=$(uname -m)
case $arch in '' | *[!A-Za-z0-9_]*) die "unknown machine architecture '$arch'" ;; esac

# What is checked before anything is written.
[ -n "$name" ] || name=$(uname -n)
case $name in
'' | *[!A-Za-z0-9._-]*) die "the name '$name' may hold only ASCII letters, digits, '.', '-' and '_' (--name NAME)" ;;
esac
[ ${#name} -le 128 ] || die "the name is longer than 128 bytes (--name NAME)"
case $lifecycle in '' | permanent | ephemeral) ;; *) die "--lifecycle is permanent or ephemeral, not '$lifecycle'" ;; esac
case $token in
*[!A-Za-z0-9._~+/=:@%,-]*) die "the enrolment token has a character this script does not write: only letters, digits and ._~+/=:@%,- (openssl rand -hex 32 makes one)" ;;
esac
labels_toml=
if [ -n "$labels" ]; then
	set -f
	old_ifs=$IFS
	IFS=,
	for pair in $labels; do
		key=${pair%%=*}
		value=${pair#*=}
		[ "$key" != "$pair" ] || die "--labels: '$pair' is not key=value"
		case $key in '' | *[!A-Za-z0-9_-]*) die "--labels: the key '$key' may hold only letters, digits, '-' and '_'" ;; esac
		case $value in *[!A-Za-z0-9._:/@+-]*) die "--labels: the value '$value' may hold only letters, digits and ._:/@+-" ;; esac
		labels_toml="$labels_toml${labels_toml:+, }$key = \"$value\""
	done
	IFS=$old_ifs
	set +f
fi

write_config=yes
if [ -f "$CONF" ] && [ "$rewrite" = no ]; then
	write_config=no
fi
if [ "$write_config" = yes ] && [ -z "$token" ]; then
	die "a first install needs the collector's enrolment token: --enroll-token TOKEN (or LOOKOUT_ENROLL_TOKEN)"
fi

umask 077
tmp=$(mktemp -d "${TMPDIR:-/tmp}/lookout-install.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
trap 'exit 1' HUP INT TERM

# curl trusts the collector's CA when it names one (the script itself came over the same road).
cacert=
if [ -n "$LOOKOUT_CA" ]; then
	printf '%s' "$LOOKOUT_CA" >"$tmp/ca.pem"
	cacert=$tmp/ca.pem
fi

# The collector's sentence in an error answer ({"error": "..."}), else the first line.
reason() {
	r=$(sed -n 's/.*"error" *: *"\(.*\)".*/\1/p' "$1" | cut -c1-500)
	[ -n "$r" ] || r=$(sed -n 1p "$1" | cut -c1-200)
	printf '%s' "$r"
}

# fetch PATH FILE: GET the collector's PATH into FILE; stops with the collector's reason unless
# it answers 200.
fetch() {
	code=$(curl -sS --proto '=http,https' ${cacert:+--cacert "$cacert"} -o "$2" -w '%{http_code}' "$LOOKOUT_URL$1") ||
		die "cannot reach the collector at $LOOKOUT_URL (curl's message above)"
	[ "$code" = 200 ] || die "GET $LOOKOUT_URL$1: $code: $(reason "$2")"
}

# 1. The binary, verified.
file=lookout-agent-linux-$arch
say "downloading $file from $LOOKOUT_URL"
fetch "/downloads/$file.sha256" "$tmp/sum"
want=$(cut -d' ' -f1 <"$tmp/sum")
case $want in
*[!0-9a-f]*) die "the collector's SHA-256 for $file is not one: '$want'" ;;
esac
[ ${#want} -eq 64 ] || die "the collector's SHA-256 for $file is not one: '$want'"
fetch "/downloads/$file" "$tmp/lookout-agent"
got=$(sha256sum "$tmp/lookout-agent" | cut -d' ' -f1)
[ "$got" = "$want" ] || die "$file does not match its SHA-256 (got $got, the collector says $want): the download was damaged, or the binary changed on the collector meanwhile; run the command again"
chmod 0755 "$tmp/lookout-agent"
version=$("$tmp/lookout-agent" --version 2>&1) ||
	die "the downloaded agent does not run on this machine ($arch): $version"
say "verified $version (sha256 $got)"

# 2. The configuration, staged and validated.
# config CA_PATH: the agent's configuration, with its `ca` at CA_PATH.
config() {
	printf '# Written by the Lookout install script from %s (%s).\n' "$LOOKOUT_URL" "$LOOKOUT_VERSION"
	printf '# Kept when the script runs again (an upgrade); --rewrite-config writes it anew.\n'
	printf '# Every key: docs/configuration.md. After a change: systemctl reload lookout-agent.\n'
	printf 'name = "%s"\n' "$name"
	printf 'collector = "%s"\n' "$LOOKOUT_URL"
	printf '# Used once, to enrol; the credential is then kept in data_dir. The token is in\n'
	printf '# %s (mode 0600), which the unit reads.\n' "$ENV_FILE"
	printf 'enroll_token = "${LOOKOUT_ENROLL_TOKEN}"\n'
	[ -z "$LOOKOUT_CA" ] || printf 'ca = "%s"\n' "$1"
	[ -z "$lifecycle" ] || printf 'lifecycle = "%s"\n' "$lifecycle"
	printf 'data_dir = "%s"\n' "$LOOKOUT_DATA_DIR"
	[ -z "$labels_toml" ] || printf 'labels = { %s }\n' "$labels_toml"
}
if [ "$write_config" = yes ]; then
	config "$tmp/ca.pem" >"$tmp/check.toml"
	out=$(LOOKOUT_ENROLL_TOKEN=$token "$tmp/lookout-agent" validate --config "$tmp/check.toml" 2>&1) ||
		die "the configuration this script would write is refused: $out"
	config "$CA_FILE" >"$tmp/agent.toml"
	printf 'LOOKOUT_ENROLL_TOKEN=%s\n' "$token" >"$tmp/agent.env"
else
	kept=$(sed -n 's/^name *= *"\(.*\)"/\1/p' "$CONF" | sed -n 1p)
	say "keeping $CONF (agent '$kept'); --rewrite-config writes it anew"
fi

# 3. Enrolment, unless the agent has its credential.
if [ "$write_config" = yes ] && [ ! -s "$LOOKOUT_DATA_DIR/credential" ]; then
	say "enrolling as '$name'"
	printf 'Authorization: Bearer %s\n' "$token" >"$tmp/auth"
	body="{\"name\":\"$name\"${lifecycle:+,\"lifecycle\":\"$lifecycle\"}}"
	code=$(curl -sS --proto '=http,https' ${cacert:+--cacert "$cacert"} -o "$tmp/enrolled" -w '%{http_code}' \
		-X POST -H @"$tmp/auth" -H 'Content-Type: application/json' --data "$body" \
		"$LOOKOUT_URL/v1/enroll") ||
		die "cannot reach the collector at $LOOKOUT_URL to enrol (curl's message above); nothing was installed"
	case $code in
	201) ;;
	401) die "the collector refused the enrolment token (401: $(reason "$tmp/enrolled")); nothing was installed" ;;
	*) die "the collector refused the enrolment ($code): $(reason "$tmp/enrolled"); nothing was installed" ;;
	esac
	credential=$(sed -n 's/.*"credential" *: *"\([^"]*\)".*/\1/p' "$tmp/enrolled")
	case $credential in
	'' | *[!A-Za-z0-9_-]*) die "the collector's enrolment answer holds no credential" ;;
	esac
	mkdir -p "$LOOKOUT_DATA_DIR"
	chmod 0700 "$LOOKOUT_DATA_DIR"
	printf '%s\n' "$credential" >"$LOOKOUT_DATA_DIR/credential.new"
	chmod 0600 "$LOOKOUT_DATA_DIR/credential.new"
	mv -f "$LOOKOUT_DATA_DIR/credential.new" "$LOOKOUT_DATA_DIR/credential"
	say "enrolled; the credential is kept in $LOOKOUT_DATA_DIR/credential (mode 0600)"
elif [ -s "$LOOKOUT_DATA_DIR/credential" ]; then
	say "keeping the credential in $LOOKOUT_DATA_DIR/credential and the spool"
fi

# 4. Installed: each file written beside its place and renamed over it.
# put SOURCE MODE DEST
put() {
	# Folders it makes are 0755, as a package's are, whatever this script's umask.
	(umask 022 && mkdir -p "$(dirname "$3")")
	cp "$1" "$3.new"
	chown 0:0 "$3.new"
	chmod "$2" "$3.new"
	mv -f "$3.new" "$3"
}
if [ -e "$BIN" ]; then
	say "upgrading $BIN ($("$BIN" --version 2>/dev/null || echo unknown) -> $version)"
fi
put "$tmp/lookout-agent" 0755 "$BIN"
if [ "$write_config" = yes ]; then
	(umask 022 && mkdir -p "$CONF_DIR")
	[ -z "$LOOKOUT_CA" ] || put "$tmp/ca.pem" 0644 "$CA_FILE"
	put "$tmp/agent.env" 0600 "$ENV_FILE"
	put "$tmp/agent.toml" 0644 "$CONF"
	say "wrote $CONF, $ENV_FILE (0600)${LOOKOUT_CA:+ and $CA_FILE}"
fi
printf '%s' "$LOOKOUT_UNIT" >"$tmp/unit"
put "$tmp/unit" 0644 "$UNIT_FILE"
say "installed $BIN and $UNIT_FILE"

# 5. Started, or a dry run of the start.
if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
	systemctl daemon-reload || die "systemctl daemon-reload failed (its message above)"
	systemctl enable --quiet lookout-agent.service ||
		die "systemctl enable lookout-agent failed (its message above)"
	systemctl restart lookout-agent.service ||
		die "lookout-agent is installed but did not start: journalctl -u lookout-agent says why"
	say "lookout-agent is running: systemctl status lookout-agent; journalctl -u lookout-agent"
else
	say "systemd is not running here (a chroot or a container): lookout-agent is installed, not started"
	say "dry run of the start:"
	out=$(
		set -a
		# shellcheck disable=SC1090
		[ ! -f "$ENV_FILE" ] || . "$ENV_FILE"
		set +a
		"$BIN" validate --config "$CONF" 2>&1
	) || die "the installed configuration is refused: $out"
	say "$out"
	say "systemd would start: $(sed -n 's/^ExecStart=//p' "$UNIT_FILE" | sed -n 1p)"
fi
