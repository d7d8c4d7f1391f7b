#!/usr/bin/env bash
# Build agentic/agent:TAG without a registry or a Dockerfile, in two steps that cache apart:
#
#   agentic/agent-toolchain:TAG  a Debian bookworm root filesystem made by debootstrap with the
#                                developer toolchain (git, python3, ripgrep, fd, jq, build tools,
#                                curl, procps), imported with `docker import`. Rebuilt only when
#                                the package list or this script changes.
#   agentic/agent:TAG            the toolchain plus the agent program (the package's agent
#                                modules, and grpcio and protobuf from PyPI installed with the
#                                host's pip for the image's Python 3.11), added with
#                                `docker create`, `docker cp` and `docker commit`. Rebuilt when
#                                the agent's files change.
#
# The agent image carries the label dev.agentic.agent=true, which tells the controller to wait
# for its agent before reporting the instance Ready. Its command is agent-supervisor, which
# restarts the agent when it exits, so a crashed agent never stops the sandbox.
#
# Usage: images/agent/build.sh [--force] [--tag TAG]
# Environment: AGENTIC_SANDBOX_DEBIAN_MIRROR (default http://deb.debian.org/debian),
# AGENTIC_SANDBOX_IMAGE_CACHE (default /var/cache/agentic-sandbox) for the debootstrap packages.

set -euo pipefail

AGENT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$AGENT_DIR/../.." && pwd)
LOG_PREFIX="images/agent/build.sh"
# shellcheck source-path=SCRIPTDIR source=../../scripts/lib.sh
source "$REPO_ROOT/scripts/lib.sh"

MIRROR=${AGENTIC_SANDBOX_DEBIAN_MIRROR:-http://deb.debian.org/debian}
CACHE_DIR=${AGENTIC_SANDBOX_IMAGE_CACHE:-/var/cache/agentic-sandbox}
SUITE=bookworm
AGENT_UID=10001
INPUTS_LABEL=dev.agentic.sandbox.inputs
PACKAGES=python3,git,ripgrep,fd-find,jq,build-essential,ca-certificates,curl,procps,less,openssh-client
# grpcio and protobuf for the agent; protobuf must be at least the version that generated
# agent_pb2.py (see pyproject.toml).
PYTHON_REQUIREMENTS=("grpcio>=1.60" "protobuf>=7.35.1,<8")
LOCK_FILE=${TMPDIR:-/tmp}/agentic-sandbox-agent-image.lock
FORCE=0
TAG=dev
WORKDIR=

parse_args() {
    while [ "$#" -gt 0 ]; do
        case "$1" in
            --force) FORCE=1 ;;
            --tag)
                [ "$#" -ge 2 ] || die "--tag needs a value, for example --tag dev"
                TAG=$2
                shift
                ;;
            -h | --help)
                sed -n '2,20p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
                exit 0
                ;;
            *) die "unknown argument '$1'; usage: images/agent/build.sh [--force] [--tag TAG]" ;;
        esac
        shift
    done
}

check_prerequisites() {
    command -v docker >/dev/null || die "the docker command is missing; run scripts/setup"
    command -v debootstrap >/dev/null || die "debootstrap is missing; run: apt-get install debootstrap"
    [ "$(id -u)" -eq 0 ] || die "debootstrap needs root; run this script as root"
    "$VENV_DIR/bin/python" -m pip --version >/dev/null 2>&1 || die "the project venv at $VENV_DIR has no pip; run scripts/setup"
}

image_inputs() {
    local value
    value=$(docker image inspect --format "{{ index .Config.Labels \"$INPUTS_LABEL\" }}" "$1" 2>/dev/null) || return 0
    [ "$value" = "<no value>" ] || printf '%s' "$value"
}

toolchain_inputs() {
    { printf '%s %s %s\n' "$SUITE" "$PACKAGES" "$MIRROR"; sed -n '/^build_toolchain()/,/^}/p' "${BASH_SOURCE[0]}"; } \
        | sha256sum | cut -d' ' -f1
}

agent_inputs() {
    (
        cd "$REPO_ROOT"
        printf '%s\n' "$1" "${PYTHON_REQUIREMENTS[@]}"
        sed -n '/^build_agent()/,/^}/p' "${BASH_SOURCE[0]}"
        find agentic_sandbox/agent images/agent/rootfs -type f \( -name '*.py' -o -path '*/rootfs/*' \) \
            -not -name '*.pyc' -print0 | LC_ALL=C sort -z | xargs -0 sha256sum
    ) | sha256sum | cut -d' ' -f1
}

build_toolchain() {
    local image=agentic/agent-toolchain:$TAG inputs root
    inputs=$(toolchain_inputs)
    if [ "$FORCE" -eq 0 ] && [ "$(image_inputs "$image")" = "$inputs" ]; then
        log "$image is up to date (inputs ${inputs:0:12})"
        return 0
    fi
    log "building $image with debootstrap (inputs ${inputs:0:12}); this takes a few minutes"
    root=$WORKDIR/toolchain
    mkdir -p "$CACHE_DIR/debootstrap"
    debootstrap --variant=minbase --include="$PACKAGES" --cache-dir="$CACHE_DIR/debootstrap" \
        "$SUITE" "$root" "$MIRROR" >"$WORKDIR/debootstrap.log" 2>&1 \
        || { tail -20 "$WORKDIR/debootstrap.log" >&2; die "debootstrap failed; see the lines above"; }
    chroot "$root" groupadd --gid "$AGENT_UID" agent
    chroot "$root" useradd --uid "$AGENT_UID" --gid "$AGENT_UID" --create-home --shell /bin/bash agent
    mkdir -p "$root/workspace"
    chown "$AGENT_UID:$AGENT_UID" "$root/workspace"
    ln -sf /usr/bin/fdfind "$root/usr/local/bin/fd"
    # Package caches and lists are not needed at run time.
    rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* "$root"/tmp/* "$root"/dev/*
    tar -C "$root" --numeric-owner -cf "$WORKDIR/toolchain.tar" .
    docker import --message "built by images/agent/build.sh" \
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change 'ENV LANG=C.UTF-8' \
        --change 'WORKDIR /workspace' \
        --change 'CMD ["/bin/bash"]' \
        --change "LABEL $INPUTS_LABEL=$inputs" \
        --change 'LABEL org.opencontainers.image.title=agentic-sandbox-agent-toolchain' \
        --change "LABEL org.opencontainers.image.version=$TAG" \
        "$WORKDIR/toolchain.tar" "$image" >/dev/null
    log "imported $image"
}

build_agent() {
    local image=agentic/agent:$TAG toolchain=agentic/agent-toolchain:$TAG inputs stage container
    inputs=$(agent_inputs "$(docker image inspect --format '{{ .Id }}' "$toolchain")")
    if [ "$FORCE" -eq 0 ] && [ "$(image_inputs "$image")" = "$inputs" ]; then
        log "$image is up to date (inputs ${inputs:0:12})"
        return 0
    fi
    log "building $image (inputs ${inputs:0:12})"
    stage=$WORKDIR/agent
    mkdir -p "$stage/opt/sandbox-agent/lib/agentic_sandbox"
    "$VENV_DIR/bin/python" -m pip install --quiet --no-compile --target "$stage/opt/sandbox-agent/lib" \
        "${PYTHON_REQUIREMENTS[@]}"
    cp "$REPO_ROOT/agentic_sandbox/__init__.py" "$stage/opt/sandbox-agent/lib/agentic_sandbox/"
    # Only the modules the agent imports; the controller's modules stay out of the image.
    (cd "$REPO_ROOT" && find agentic_sandbox/agent -name '*.py' -not -name 'server.py' -not -name 'hub.py' \
        -exec cp --parents {} "$stage/opt/sandbox-agent/lib/" \;)
    cp -R "$AGENT_DIR/rootfs/." "$stage/"
    chmod -R a+rX "$stage"

    container=$(docker create "$toolchain" /bin/true)
    trap 'docker rm -f "$container" >/dev/null 2>&1 || true; cleanup' EXIT
    tar -C "$stage" --numeric-owner --owner=0 --group=0 -cf - . | docker cp - "$container:/"
    docker commit \
        --change 'CMD ["/usr/local/bin/agent-supervisor"]' \
        --change "USER $AGENT_UID" \
        --change 'WORKDIR /workspace' \
        --change 'LABEL dev.agentic.agent=true' \
        --change "LABEL $INPUTS_LABEL=$inputs" \
        --change 'LABEL org.opencontainers.image.title=agentic-sandbox-agent' \
        --change 'LABEL org.opencontainers.image.description="Debian toolchain with the agentic-sandbox agent"' \
        --change "LABEL org.opencontainers.image.base.name=$toolchain" \
        "$container" "$image" >/dev/null
    docker rm -f "$container" >/dev/null
    trap cleanup EXIT
    log "committed $image as $(docker image inspect --format '{{ .Id }}' "$image")"
}

smoke_test() {
    local image=agentic/agent:$TAG tool
    for tool in git python3 rg fd jq gcc make curl sandbox-agent; do
        docker run --rm --entrypoint /bin/sh "$image" -c "command -v $tool >/dev/null" \
            || die "$image lacks $tool"
    done
    docker run --rm "$image" python3 -I -c \
        'import sys; sys.path.insert(0, "/opt/sandbox-agent/lib"); import grpc, agentic_sandbox.agent.program' \
        || die "$image cannot import the agent program"
    log "$image has git, python3, rg, fd, jq, gcc, make, curl and the agent"
}

# Unmount anything debootstrap left mounted under the work directory, then remove it without
# crossing into another file system.
cleanup() {
    local mount
    awk -v dir="$WORKDIR" 'index($2, dir) == 1 { print $2 }' /proc/mounts | sort -r | while read -r mount; do
        umount -l "$mount" || true
    done
    rm -rf --one-file-system "$WORKDIR"
}

main() {
    parse_args "$@"
    check_prerequisites
    umask 022
    exec 9>"$LOCK_FILE"
    flock -w 1800 9 || die "another images/agent/build.sh held $LOCK_FILE for 30 minutes"
    WORKDIR=$(mktemp -d "${TMPDIR:-/tmp}/agentic-sandbox-agent.XXXXXX")
    trap cleanup EXIT
    build_toolchain
    build_agent
    smoke_test
}

main "$@"
