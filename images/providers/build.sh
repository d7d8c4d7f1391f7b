#!/usr/bin/env bash
# Build the provider images on top of agentic/agent:TAG, without a registry or a Dockerfile:
#
#   agentic/agent-node:TAG          agentic/agent:TAG plus Debian bookworm's nodejs and npm
#                                   (with bookworm-security enabled); shared by the images below.
#   agentic/claude:TAG              + @anthropic-ai/claude-code (the `claude` command)
#   agentic/codex:TAG               + @openai/codex (`codex`)
#   agentic/opencode:TAG            + opencode-ai (`opencode`)
#   agentic/automation-control:TAG  + playwright-core (`playwright-core`) and Debian's chromium,
#                                   for browser automation driven from inside the sandbox
#
# The npm versions are pinned in images/providers/versions.env. The host's npm downloads each
# tool into a staging directory with --ignore-scripts, so no package code runs on the host.
# The staged files are copied into a build container, where the tool's install scripts run
# with the image's Node and without a network (claude-code and opencode-ai copy their native
# executable into place there). The container is then committed with `docker commit`.
#
# Each image keeps the label dev.agentic.agent=true and the agent-supervisor command, so the
# controller waits for its agent before reporting Ready. No credentials go into an image.
# An image is rebuilt only when its inputs change (label dev.agentic.sandbox.inputs).
#
# Usage: images/providers/build.sh [--force] [--tag TAG] [claude|codex|opencode|automation-control|all]...
# Environment: AGENTIC_SANDBOX_DEBIAN_MIRROR (default http://deb.debian.org/debian),
# AGENTIC_SANDBOX_DEBIAN_SECURITY_MIRROR (default http://deb.debian.org/debian-security),
# AGENTIC_SANDBOX_IMAGE_CACHE (default /var/cache/agentic-sandbox) for the apt and npm caches.

set -euo pipefail

PROVIDERS_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
LOG_PREFIX="images/providers/build.sh"
# shellcheck source-path=SCRIPTDIR source=../../scripts/lib.sh
source "$PROVIDERS_DIR/../../scripts/lib.sh"
# shellcheck source-path=SCRIPTDIR source=versions.env
source "$PROVIDERS_DIR/versions.env"

ALL_PROVIDERS=(claude codex opencode automation-control)
MIRROR=${AGENTIC_SANDBOX_DEBIAN_MIRROR:-http://deb.debian.org/debian}
SECURITY_MIRROR=${AGENTIC_SANDBOX_DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}
CACHE_DIR=${AGENTIC_SANDBOX_IMAGE_CACHE:-/var/cache/agentic-sandbox}
AGENT_UID=10001
INPUTS_LABEL=dev.agentic.sandbox.inputs
LOCK_FILE=${TMPDIR:-/tmp}/agentic-sandbox-provider-images.lock
FORCE=0
TAG=dev
SELECTED=()
WORKDIR=
CONTAINER=

usage() {
    sed -n '2,25p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
}

parse_args() {
    local name
    while [ "$#" -gt 0 ]; do
        case "$1" in
            --force) FORCE=1 ;;
            --tag)
                [ "$#" -ge 2 ] || die "--tag needs a value, for example --tag dev"
                TAG=$2
                shift
                ;;
            -h | --help)
                usage
                exit 0
                ;;
            all) SELECTED+=("${ALL_PROVIDERS[@]}") ;;
            claude | codex | opencode | automation-control) SELECTED+=("$1") ;;
            *) die "unknown argument '$1'; expected claude, codex, opencode, automation-control or all" ;;
        esac
        shift
    done
    [ "${#SELECTED[@]}" -gt 0 ] || SELECTED=("${ALL_PROVIDERS[@]}")
    # Keep the first occurrence of each name, in the order given.
    mapfile -t SELECTED < <(printf '%s\n' "${SELECTED[@]}" | awk '!seen[$0]++')
    case "$TAG" in
        '' | *[!A-Za-z0-9_.-]* | [.-]*) die "tag '$TAG' is invalid; use letters, digits, '_', '.' and '-'" ;;
    esac
    for name in CLAUDE_CODE_VERSION CODEX_VERSION OPENCODE_VERSION PLAYWRIGHT_CORE_VERSION; do
        [ -n "${!name:-}" ] || die "$name is not set in images/providers/versions.env"
    done
}

check_prerequisites() {
    command -v docker >/dev/null || die "the docker command is missing; run scripts/setup"
    command -v npm >/dev/null || die "npm is missing on the host; install it with: apt-get install npm"
    local error
    if ! error=$(timeout 20 docker version 2>&1 >/dev/null); then
        die "the Docker Engine is not reachable (${error:-docker version timed out}); start it with scripts/setup"
    fi
    docker image inspect "agentic/agent:$TAG" >/dev/null 2>&1 \
        || die "agentic/agent:$TAG is missing; build it first with images/agent/build.sh (or: make agent-image)"
}

# Set PACKAGE, VERSION, COMMAND, APT_PACKAGES, ENV_CHANGES and DESCRIPTION for provider $1.
provider_spec() {
    APT_PACKAGES=()
    ENV_CHANGES=()
    case "$1" in
        claude)
            PACKAGE=@anthropic-ai/claude-code VERSION=$CLAUDE_CODE_VERSION COMMAND=claude
            # The image is pinned and /usr/local belongs to root, so self-updates cannot work.
            ENV_CHANGES=('ENV DISABLE_AUTOUPDATER=1')
            DESCRIPTION="Claude Code CLI $VERSION on agentic/agent:$TAG"
            ;;
        codex)
            PACKAGE=@openai/codex VERSION=$CODEX_VERSION COMMAND=codex
            DESCRIPTION="OpenAI Codex CLI $VERSION on agentic/agent:$TAG"
            ;;
        opencode)
            PACKAGE=opencode-ai VERSION=$OPENCODE_VERSION COMMAND=opencode
            ENV_CHANGES=('ENV OPENCODE_DISABLE_AUTOUPDATE=true')
            DESCRIPTION="OpenCode CLI $VERSION on agentic/agent:$TAG"
            ;;
        automation-control)
            PACKAGE=playwright-core VERSION=$PLAYWRIGHT_CORE_VERSION COMMAND=playwright-core
            # Playwright's own browser builds are downloaded from outside the npm registry;
            # Debian's chromium is launched through executablePath instead.
            APT_PACKAGES=(chromium fonts-liberation)
            ENV_CHANGES=('ENV CHROMIUM_PATH=/usr/bin/chromium' 'ENV PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1')
            DESCRIPTION="Playwright $VERSION (playwright-core) with Debian chromium on agentic/agent:$TAG"
            ;;
    esac
}

image_inputs() {
    local value
    value=$(docker image inspect --format "{{ index .Config.Labels \"$INPUTS_LABEL\" }}" "$1" 2>/dev/null) || return 0
    [ "$value" = "<no value>" ] || printf '%s' "$value"
}

image_id() {
    docker image inspect --format '{{ .Id }}' "$1" 2>/dev/null || true
}

# Print the sha256 over the arguments, the build functions of this script (declare -f prints
# them without comments) and in-image.sh.
inputs_hash() {
    {
        printf '%s\n' "$@"
        declare -f build_node build_provider provider_spec stage_package run_build_container commit_image
        sha256sum "$PROVIDERS_DIR/in-image.sh" | cut -d' ' -f1
    } | sha256sum | cut -d' ' -f1
}

# Run in-image.sh with ARGS in a root container of BASE, after copying STAGE (if not empty) over
# its root; leave the container in CONTAINER. NETWORK is the container's network (none or bridge).
run_build_container() {
    local base=$1 stage=$2 network=$3
    shift 3
    mkdir -p "$CACHE_DIR/apt-archives"
    # The base images have no entrypoint, so the committed image keeps none; its command is
    # replaced in commit_image.
    CONTAINER=$(docker create --user 0:0 --network "$network" \
        --volume "$CACHE_DIR/apt-archives:/var/cache/apt/archives" \
        "$base" /bin/bash /tmp/in-image.sh "$@")
    if [ -n "$stage" ]; then
        tar -C "$stage" --numeric-owner --owner=0 --group=0 -cf - . | docker cp - "$CONTAINER:/"
    fi
    docker cp "$PROVIDERS_DIR/in-image.sh" "$CONTAINER:/tmp/in-image.sh"
    docker start --attach "$CONTAINER" || die "the build step '$*' failed in $base; see the lines above"
}

# Commit CONTAINER as IMAGE with the agent's run configuration and CHANGES, then remove the
# container and the image the tag pointed to before, unless something still uses it.
commit_image() {
    local image=$1 previous changes=() change
    shift
    previous=$(image_id "$image")
    for change in \
        'CMD ["/usr/local/bin/agent-supervisor"]' \
        "USER $AGENT_UID" \
        'WORKDIR /workspace' \
        'LABEL dev.agentic.agent=true' \
        "LABEL org.opencontainers.image.version=$TAG" \
        "$@"; do
        changes+=(--change "$change")
    done
    docker commit "${changes[@]}" "$CONTAINER" "$image" >/dev/null
    docker rm -f "$CONTAINER" >/dev/null
    CONTAINER=
    log "committed $image as $(image_id "$image")"
    if [ -n "$previous" ] && [ "$previous" != "$(image_id "$image")" ]; then
        docker image rm "$previous" >/dev/null 2>&1 || log "kept the previous image $previous: a container or another tag uses it"
    fi
}

build_node() {
    local image=agentic/agent-node:$TAG base=agentic/agent:$TAG inputs version
    inputs=$(inputs_hash node "$(image_id "$base")" "$MIRROR" "$SECURITY_MIRROR")
    if [ "$FORCE" -eq 0 ] && [ "$(image_inputs "$image")" = "$inputs" ]; then
        log "$image is up to date (inputs ${inputs:0:12})"
        return 0
    fi
    log "building $image: nodejs and npm from Debian bookworm (inputs ${inputs:0:12})"
    run_build_container "$base" "" bridge node "$MIRROR" "$SECURITY_MIRROR"
    version=$(docker cp "$CONTAINER:/var/lib/dpkg/status" - | tar -xO \
        | awk '/^Package: /{package=$2} package=="nodejs" && /^Version: /{print $2}')
    commit_image "$image" \
        "LABEL $INPUTS_LABEL=$inputs" \
        "LABEL dev.agentic.nodejs.version=$version" \
        'LABEL org.opencontainers.image.title=agentic-sandbox-agent-node' \
        "LABEL org.opencontainers.image.description=\"agentic/agent:$TAG with Debian nodejs $version and npm\"" \
        "LABEL org.opencontainers.image.base.name=$base"
}

# Download PACKAGE@VERSION and its dependencies into STAGE/usr/local with the host's npm. No
# install script runs here; they run in the build container.
stage_package() {
    local stage=$1
    mkdir -p "$stage/usr/local" "$CACHE_DIR/npm"
    log "downloading $PACKAGE@$VERSION from the npm registry"
    npm install --global --prefix "$stage/usr/local" --cache "$CACHE_DIR/npm" --ignore-scripts \
        --no-audit --no-fund --no-update-notifier --loglevel=error "$PACKAGE@$VERSION" \
        || die "npm could not install $PACKAGE@$VERSION; check the version in images/providers/versions.env"
    # A global install writes no .npmrc, but make sure no registry credentials can slip in.
    find "$stage" -name .npmrc -delete
    chmod -R a+rX "$stage"
}

build_provider() {
    local provider=$1 image=agentic/$1:$TAG base=agentic/agent-node:$TAG inputs stage network=none
    provider_spec "$provider"
    inputs=$(inputs_hash "$provider" "$(image_id "$base")" "$PACKAGE@$VERSION")
    if [ "$FORCE" -eq 0 ] && [ "$(image_inputs "$image")" = "$inputs" ]; then
        log "$image is up to date ($PACKAGE@$VERSION, inputs ${inputs:0:12})"
        return 0
    fi
    log "building $image with $PACKAGE@$VERSION (inputs ${inputs:0:12})"
    stage=$WORKDIR/$provider
    stage_package "$stage"
    # Only apt needs the network; install scripts and `--version` run without one.
    [ "${#APT_PACKAGES[@]}" -eq 0 ] || network=bridge
    run_build_container "$base" "$stage" "$network" tool "$PACKAGE" "$COMMAND" "${APT_PACKAGES[@]}"
    rm -rf "$stage"
    commit_image "$image" "${ENV_CHANGES[@]}" \
        "LABEL $INPUTS_LABEL=$inputs" \
        "LABEL dev.agentic.provider.package=$PACKAGE" \
        "LABEL dev.agentic.provider.version=$VERSION" \
        "LABEL dev.agentic.provider.command=$COMMAND" \
        "LABEL org.opencontainers.image.title=agentic-sandbox-$provider" \
        "LABEL org.opencontainers.image.description=\"$DESCRIPTION\"" \
        "LABEL org.opencontainers.image.base.name=$base"
}

cleanup() {
    [ -z "$CONTAINER" ] || docker rm -f "$CONTAINER" >/dev/null 2>&1 || true
    [ -z "$WORKDIR" ] || rm -rf "$WORKDIR"
}

main() {
    parse_args "$@"
    check_prerequisites
    umask 022
    exec 9>"$LOCK_FILE"
    flock -w 1800 9 || die "another images/providers/build.sh held $LOCK_FILE for 30 minutes"
    WORKDIR=$(mktemp -d "${TMPDIR:-/tmp}/agentic-sandbox-providers.XXXXXX")
    trap cleanup EXIT

    log "images: ${SELECTED[*]}, tag $TAG"
    build_node
    local provider
    for provider in "${SELECTED[@]}"; do
        build_provider "$provider"
    done
    log "built or found up to date: ${SELECTED[*]} (tag $TAG)"
}

main "$@"
