#!/usr/bin/env bash
# Smoke-test an agent image, such as agentic/claude:dev or agentic/agent:dev:
#
#   1. The image carries the label dev.agentic.agent=true. For a provider image (one with the
#      label dev.agentic.provider.command), `COMMAND --version` and `node --version` run in a
#      container without a network, and the output names the version in dev.agentic.provider.version.
#   2. A real `sandboxctl serve` on loopback (own state directory, ports and controller id, no
#      libvirt) runs an Instance of the image with `network: none`. The instance must become
#      Ready, which needs the agent in the image to register, and `COMMAND --version` must run
#      through that agent with `sandboxctl exec`. agentic/automation-control also launches
#      headless chromium through playwright-core there.
#
# The tools run only with --version and without a network, so nothing contacts a vendor's
# service. The script removes the containers of its controller id, its server and its files.
#
# Usage: images/providers/smoke.sh IMAGE
# Environment: AGENTIC_SANDBOX_SMOKE_TIMEOUT, seconds the instance may take to become Ready
# (default 180).

set -euo pipefail

PROVIDERS_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
LOG_PREFIX="images/providers/smoke.sh"
# shellcheck source-path=SCRIPTDIR source=../../scripts/lib.sh
source "$PROVIDERS_DIR/../../scripts/lib.sh"

READY_TIMEOUT=${AGENTIC_SANDBOX_SMOKE_TIMEOUT:-180}
SERVER_START_TIMEOUT=60
CONTROLLER_LABEL=agentic-sandbox.controller
IMAGE=
COMMAND=
VERSION=
WORKDIR=
SERVER_PID=
SERVER_PORT=
CONTROLLER_ID=smoke-$(head -c 6 /dev/urandom | od -An -tx1 | tr -d ' \n')

label() {
    local value
    value=$(docker image inspect --format "{{ index .Config.Labels \"$1\" }}" "$IMAGE")
    [ "$value" = "<no value>" ] || printf '%s' "$value"
}

# Fail unless OUTPUT contains the expected version.
expect_version() {
    local what=$1 output=$2
    case "$output" in
        *"$VERSION"*) log "$what: $output" ;;
        *) die "$what printed '$output', which does not name version $VERSION" ;;
    esac
}

check_image() {
    docker image inspect "$IMAGE" >/dev/null 2>&1 || die "image $IMAGE is missing; build it with images/providers/build.sh"
    [ "$(label dev.agentic.agent)" = true ] || die "$IMAGE lacks the label dev.agentic.agent=true"
    COMMAND=$(label dev.agentic.provider.command)
    VERSION=$(label dev.agentic.provider.version)
    if [ -z "$COMMAND" ]; then
        log "$IMAGE has no provider command; checking only that its agent registers"
        return 0
    fi
    local output
    output=$(docker run --rm --network none "$IMAGE" "$COMMAND" --version 2>&1 | head -1) \
        || die "$COMMAND --version failed in $IMAGE: $output"
    expect_version "$COMMAND --version in docker run" "$output"
    log "node --version in docker run: $(docker run --rm --network none "$IMAGE" node --version)"
}

free_port() {
    "$VENV_DIR/bin/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

server_healthy() {
    curl -fsS --max-time 1 "http://127.0.0.1:$SERVER_PORT/healthz" >/dev/null 2>&1
}

start_server() {
    local grpc_port deadline
    SERVER_PORT=$(free_port)
    grpc_port=$(free_port)
    mkdir -p "$WORKDIR/state" "$WORKDIR/manifests" "$WORKDIR/mounts"
    "$VENV_DIR/bin/sandboxctl" serve --state-dir "$WORKDIR/state" --manifests "$WORKDIR/manifests" \
        --port "$SERVER_PORT" --grpc-port "$grpc_port" --libvirt-uri none \
        --controller-id "$CONTROLLER_ID" --allowed-mount-root "$WORKDIR/mounts" \
        >"$WORKDIR/server.log" 2>&1 &
    SERVER_PID=$!
    deadline=$((SECONDS + SERVER_START_TIMEOUT))
    until server_healthy; do
        kill -0 "$SERVER_PID" 2>/dev/null || { tail -20 "$WORKDIR/server.log" >&2; die "sandboxctl serve exited early"; }
        [ "$SECONDS" -lt "$deadline" ] || die "sandboxctl serve was not healthy after ${SERVER_START_TIMEOUT}s"
        sleep 0.2
    done
    log "sandboxctl serve is up: API 127.0.0.1:$SERVER_PORT, agents 127.0.0.1:$grpc_port, controller $CONTROLLER_ID"
}

sandboxctl() {
    SANDBOXCTL_SERVER="http://127.0.0.1:$SERVER_PORT" AGENTIC_SANDBOX_STATE_DIR="$WORKDIR/state" \
        "$VENV_DIR/bin/sandboxctl" "$@"
}

# Launch headless chromium with playwright-core and print the title of a page set from a string.
check_browser() {
    local name=$1 output script
    # shellcheck disable=SC2016 # ${...} is a JavaScript template literal, not a shell expansion
    script='const { chromium } = require("playwright-core");
(async () => {
  const browser = await chromium.launch({ executablePath: process.env.CHROMIUM_PATH });
  const page = await browser.newPage();
  await page.setContent("<title>smoke</title>");
  console.log(`chromium ${browser.version()} page title: ${await page.title()}`);
  await browser.close();
})().catch((error) => { console.error(error); process.exit(1); });'
    output=$(sandboxctl exec -e NODE_PATH=/usr/local/lib/node_modules "$name" -- node -e "$script") \
        || die "playwright-core could not drive chromium in $IMAGE: $output"
    log "$output"
}

run_instance() {
    local name=$CONTROLLER_ID output
    cat >"$WORKDIR/manifests/$name.yaml" <<EOF_MANIFEST
apiVersion: sandbox.agentic.dev/v1alpha1
kind: Instance
metadata:
  name: $name
spec:
  image: $IMAGE
  network: none
EOF_MANIFEST
    log "waiting up to ${READY_TIMEOUT}s for instance $name to become Ready"
    if ! sandboxctl wait --for=condition=Ready --timeout="${READY_TIMEOUT}s" "$name"; then
        sandboxctl get instances "$name" -o yaml >&2 || true
        die "instance $name of $IMAGE did not become Ready; its agent did not register"
    fi
    log "instance $name is Ready: its agent registered with sandboxctl serve"
    if [ -n "$COMMAND" ]; then
        output=$(sandboxctl exec "$name" -- "$COMMAND" --version 2>&1 | head -1)
        expect_version "$COMMAND --version through the agent" "$output"
    else
        log "uname -a through the agent: $(sandboxctl exec "$name" -- uname -a)"
    fi
    [ "$COMMAND" != playwright-core ] || check_browser "$name"
}

cleanup() {
    local status=$? containers
    if [ -n "$SERVER_PID" ]; then
        kill -TERM "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    containers=$(docker ps -aq --filter "label=$CONTROLLER_LABEL=$CONTROLLER_ID")
    # shellcheck disable=SC2086 # one container id per word
    [ -z "$containers" ] || docker rm -f $containers >/dev/null
    if [ "$status" -ne 0 ] && [ -f "$WORKDIR/server.log" ]; then
        warn "last lines of the sandboxctl serve log:"
        tail -15 "$WORKDIR/server.log" >&2
    fi
    [ -z "$WORKDIR" ] || rm -rf "$WORKDIR"
}

main() {
    [ "$#" -eq 1 ] || die "usage: images/providers/smoke.sh IMAGE, for example agentic/claude:dev"
    case "$1" in -h | --help)
        sed -n '2,19p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
        exit 0
        ;;
    esac
    IMAGE=$1
    [ -x "$VENV_DIR/bin/sandboxctl" ] || die "sandboxctl is missing from $VENV_DIR; run scripts/setup"
    check_image
    WORKDIR=$(mktemp -d "${TMPDIR:-/tmp}/agentic-sandbox-smoke.XXXXXX")
    trap cleanup EXIT
    start_server
    run_instance
    log "$IMAGE passed"
}

main "$@"
