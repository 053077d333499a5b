#!/usr/bin/env bash
# SPDX-License-Identifier: ISC
#
# Builds nudgebridge and runs it on SQLite, in the foreground:
#
#   ./deploy/quickstart.sh           (as root)
#
# Installs the build and runtime packages (Debian 12, as root), builds a
# Release binary into build/, writes var/nudgebridge.json once (a fresh
# signing secret for source "acme", the Segment write key from
# $SEGMENT_WRITE_KEY, or without it a placeholder key and the local stand-in
# deploy/segment-standin.py as endpoint), prints the webhook URL
# and the secret to give Nudgespot, then runs the bridge.  When the config
# sends to the stand-in, the script starts it in the background first; it
# prints every Track message it receives on this terminal, between the
# bridge's log lines, and exits when the bridge does.  An existing
# var/nudgebridge.json is never overwritten; edit it and send SIGHUP to
# reload.  A Segment source that demands OAuth: also set
# SEGMENT_OAUTH_CLIENT_ID, SEGMENT_OAUTH_KEY_ID and SEGMENT_OAUTH_KEY_FILE
# (the PEM private key of the key pair registered with Segment; the config
# names the file, which stays where it is) and, for a source in the EU
# region, SEGMENT_REGION=eu.  Environment: SEGMENT_WRITE_KEY,
# SEGMENT_OAUTH_*, SEGMENT_REGION, NB_LISTEN (default 127.0.0.1:8080),
# JOBS.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"

packages=(build-essential cmake pkg-config libevent-dev libsodium-dev
	libjansson-dev libcurl4-openssl-dev libssl-dev libsqlite3-dev libpq-dev
	zlib1g-dev ca-certificates)
# The local Segment stand-in is a Python script (standard library only).
if [ -z "${SEGMENT_WRITE_KEY:-}" ] && ! command -v python3 >/dev/null; then
	packages+=(python3)
fi

missing=()
for p in "${packages[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null |
	    grep -q 'install ok installed' || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
	if [ "$(id -u)" -ne 0 ]; then
		echo "quickstart: missing packages (${missing[*]}); run as root" >&2
		exit 1
	fi
	export DEBIAN_FRONTEND=noninteractive
	apt-get update
	apt-get install -y --no-install-recommends "${packages[@]}"
fi

cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DNB_TESTS=OFF \
    -DNB_LIB_ONLY= >/dev/null
cmake --build build -j "${JOBS:-$(nproc 2>/dev/null || echo 2)}"

listen=${NB_LISTEN:-127.0.0.1:8080}
standin_port=8099
conf=var/nudgebridge.json
mkdir -p var
chmod 700 var
if [ ! -e "$conf" ]; then
	secret=$(build/nudgebridge keygen | grep -o 'whsec_[A-Za-z0-9+/=]*' | head -n 1)
	[ -n "$secret" ] || { echo "quickstart: keygen failed" >&2; exit 1; }
	# Without a real write key, events go to the local stand-in
	# (deploy/segment-standin.py), never to Segment with a placeholder.
	endpoint=""
	if [ -z "${SEGMENT_WRITE_KEY:-}" ]; then
		endpoint="      \"endpoint\": \"http://127.0.0.1:$standin_port\","
	fi
	write_key=${SEGMENT_WRITE_KEY:-changeme}
	# OAuth: all three or none; the key file as an absolute path.
	oauth=""
	oauth_set=0
	for v in SEGMENT_OAUTH_CLIENT_ID SEGMENT_OAUTH_KEY_ID \
	    SEGMENT_OAUTH_KEY_FILE; do
		[ -n "${!v:-}" ] && oauth_set=$((oauth_set + 1))
	done
	if [ "$oauth_set" -ne 0 ] && [ "$oauth_set" -ne 3 ]; then
		echo "quickstart: set all of SEGMENT_OAUTH_CLIENT_ID," \
		    "SEGMENT_OAUTH_KEY_ID and SEGMENT_OAUTH_KEY_FILE, or none" >&2
		exit 1
	fi
	if [ "$oauth_set" -eq 3 ]; then
		key_file=$(realpath "$SEGMENT_OAUTH_KEY_FILE")
		oauth="      \"oauth\": { \"client_id\": \"$SEGMENT_OAUTH_CLIENT_ID\", \"key_id\": \"$SEGMENT_OAUTH_KEY_ID\", \"private_key_file\": \"$key_file\" },"
	fi
	region=""
	if [ -n "${SEGMENT_REGION:-}" ]; then
		region="      \"region\": \"$SEGMENT_REGION\","
	fi
	umask 077
	cat > "$conf" <<JSON
{
  "listen": "$listen",
  "store": { "driver": "sqlite", "path": "nudgebridge.db" },
  "sources": [
    {
      "name": "acme",
      "signing_secrets": ["$secret"],
$endpoint
$region
$oauth
      "write_key": "$write_key"
    }
  ]
}
JSON
	echo "quickstart: wrote $top/$conf"
fi
build/nudgebridge check-config --config "$conf"

secret=$(grep -o 'whsec_[A-Za-z0-9+/=]*' "$conf" | head -n 1)
cat <<EOT

  Webhook URL:     http://$listen/v1/webhooks/acme
                   (put a TLS reverse proxy in front of it for Nudgespot)
  Signing secret:  $secret
  Config:          $top/$conf
EOT
if grep -q '"oauth"' "$conf"; then
	echo "  Segment OAuth:   on (client_id, key_id and private_key_file in"
	echo "                   the config; tokens from Segment's OAuth server)"
fi
if grep -q "\"endpoint\": \"http://127.0.0.1:$standin_port\"" "$conf"; then
	echo "  Segment:         no SEGMENT_WRITE_KEY, so events go to a local"
	echo "                   stand-in (deploy/segment-standin.py), which"
	echo "                   prints every Track message it receives here,"
	echo "                   between the bridge's log lines.  For real"
	echo "                   Segment: set write_key and remove endpoint in"
	echo "                   the config, then kill -HUP the bridge ($$)."
	if (exec 3<>"/dev/tcp/127.0.0.1/$standin_port") 2>/dev/null; then
		echo "                   (port $standin_port already answers: using" \
		    "whatever listens there)"
	else
		# --parent $$: the bridge keeps this pid (exec below), and the
		# stand-in exits once it is no longer its parent.
		python3 deploy/segment-standin.py --parent $$ "$standin_port" &
		for _ in $(seq 50); do
			(exec 3<>"/dev/tcp/127.0.0.1/$standin_port") 2>/dev/null &&
				break
			sleep 0.1
		done
	fi
fi
echo
exec build/nudgebridge serve --config "$conf"
