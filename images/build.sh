#!/usr/bin/env bash
# Build the sandbox images without a registry or `docker build`: pack a busybox root filesystem
# into a tar with fixed owners, modes and mtimes, then load it with `docker import`.
#
#   agentic/base:TAG  busybox applets, root and an unprivileged `agent` user (uid 10001)
#   agentic/demo:TAG  base plus /usr/local/bin/demo-sandbox as the default command
#
# An image is built only when it is missing or its inputs changed: each image carries the sha256
# of its inputs (busybox binary, this script, its files under images/) in the label
# dev.agentic.sandbox.inputs. Builds from the same inputs produce a byte-identical root filesystem
# tar (checked with GNU tar 1.34), and so the same layer digest.
#
# Usage: images/build.sh [--force] [--tag TAG]
#   --force    rebuild even when the images are up to date
#   --tag TAG  tag to build (default: dev)
# Environment: AGENTIC_SANDBOX_BUSYBOX sets the statically linked busybox to use
# (default /bin/busybox from Debian's busybox-static package).

set -euo pipefail

IMAGES_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
LOG_PREFIX="images/build.sh"
# shellcheck source-path=SCRIPTDIR source=../scripts/lib.sh
source "$IMAGES_DIR/../scripts/lib.sh"

BUSYBOX=${AGENTIC_SANDBOX_BUSYBOX:-/bin/busybox}
AGENT_UID=10001
INPUTS_LABEL=dev.agentic.sandbox.inputs
# Every file in the root filesystem tars gets this mtime (2000-01-01T00:00:00Z).
FIXED_MTIME=946684800
LOCK_FILE=${TMPDIR:-/tmp}/agentic-sandbox-images.lock
LOCK_TIMEOUT=300
FORCE=0
TAG=dev
WORKDIR=

usage() {
    cat <<'EOF_USAGE'
Usage: images/build.sh [--force] [--tag TAG]
Build agentic/base:TAG and agentic/demo:TAG when they are missing or their inputs changed.
  --force    rebuild even when the images are up to date
  --tag TAG  tag to build (default: dev)
Environment: AGENTIC_SANDBOX_BUSYBOX sets the statically linked busybox (default /bin/busybox).
EOF_USAGE
}

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
                usage
                exit 0
                ;;
            *) die "unknown argument '$1'; usage: images/build.sh [--force] [--tag TAG]" ;;
        esac
        shift
    done
    case "$TAG" in
        '' | *[!A-Za-z0-9_.-]* | [.-]*) die "tag '$TAG' is invalid; use letters, digits, '_', '.' and '-'" ;;
    esac
}

check_prerequisites() {
    command -v docker >/dev/null || die "the docker command is missing; run scripts/setup or install the docker.io package"
    local error
    if ! error=$(timeout 20 docker version 2>&1 >/dev/null); then
        die "the Docker Engine is not reachable (${error:-docker version timed out}); start it with scripts/setup"
    fi
    [ -x "$BUSYBOX" ] || die "busybox is missing at $BUSYBOX; install the busybox-static package (apt-get install busybox-static) or set AGENTIC_SANDBOX_BUSYBOX"
    # The image has no C library, so a dynamically linked busybox would not start in it.
    if ldd "$BUSYBOX" >/dev/null 2>&1; then
        die "$BUSYBOX is dynamically linked; install the busybox-static package or set AGENTIC_SANDBOX_BUSYBOX to a static busybox"
    fi
}

# Print the sha256 over the busybox binary, this script and the files of the given image
# directories, with their paths and modes.
inputs_hash() {
    (
        sha256sum "$BUSYBOX" | cut -d' ' -f1
        cd "$IMAGES_DIR"
        sha256sum build.sh
        local dir
        for dir in "$@"; do
            find "$dir" -type f -printf '%p %m\n' | LC_ALL=C sort
            find "$dir" -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum
        done
    ) | sha256sum | cut -d' ' -f1
}

# Print the inputs label of IMAGE, or nothing when the image or its label is missing.
image_inputs() {
    local value
    value=$(docker image inspect --format "{{ index .Config.Labels \"$INPUTS_LABEL\" }}" "$1" 2>/dev/null) || return 0
    [ "$value" = "<no value>" ] || printf '%s' "$value"
}

image_id() {
    docker image inspect --format '{{ .Id }}' "$1" 2>/dev/null || true
}

# Fill DIR with the base root filesystem: busybox, its applet links and images/base/rootfs.
stage_base() {
    local root=$1 applet
    mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,usr/local/bin,etc,root,tmp,var/tmp,home/agent,workspace,proc,sys,dev}
    cp "$BUSYBOX" "$root/bin/busybox"
    while read -r applet; do
        # linuxrc is the boot-time init of an initramfs, not a command.
        [ "$applet" = linuxrc ] && continue
        [ -e "$root/$applet" ] || [ -L "$root/$applet" ] || ln -s /bin/busybox "$root/$applet"
    done < <("$BUSYBOX" --list-full)
    cp -R "$IMAGES_DIR/base/rootfs/." "$root/"

    # Modes are set here rather than taken from the checkout, which depends on the umask.
    find "$root" -type d -exec chmod 0755 {} +
    find "$root" -type f -exec chmod 0644 {} +
    chmod 0755 "$root/bin/busybox"
    chmod 0700 "$root/root"
    chmod 0600 "$root/etc/shadow"
    chmod 1777 "$root/tmp" "$root/var/tmp"
}

stage_demo() {
    local root=$1
    stage_base "$root"
    cp -R "$IMAGES_DIR/demo/rootfs/." "$root/"
    find "$root/usr/local" -type d -exec chmod 0755 {} +
    chmod 0755 "$root/usr/local/bin/demo-sandbox"
}

# Pack DIR into TAR: owned by root, except the agent's home and /workspace, which belong to the
# agent user. GNU tar has no per-file owner option, so those two trees are appended separately.
pack_rootfs() {
    local root=$1 tarball=$2
    local common=(--format=gnu --sort=name --mtime="@$FIXED_MTIME" --numeric-owner)
    tar -C "$root" "${common[@]}" --owner=0 --group=0 \
        --exclude=./home/agent --exclude=./workspace -cf "$tarball" .
    tar -C "$root" "${common[@]}" --owner="$AGENT_UID" --group="$AGENT_UID" \
        -rf "$tarball" ./home/agent ./workspace
    log "packed $(tar -tf "$tarball" | wc -l) entries, rootfs sha256 $(sha256sum "$tarball" | cut -d' ' -f1)"
}

# Import TAR as IMAGE with the given `docker import --change` instructions, then remove the image
# the tag pointed to before, unless a container still uses it.
import_rootfs() {
    local tarball=$1 image=$2 inputs=$3
    shift 3
    local previous changes=() change
    previous=$(image_id "$image")
    for change in "$@" "LABEL $INPUTS_LABEL=$inputs"; do
        changes+=(--change "$change")
    done
    docker import --message "built by images/build.sh" "${changes[@]}" "$tarball" "$image" >/dev/null
    log "imported $image as $(image_id "$image")"
    if [ -n "$previous" ] && [ "$previous" != "$(image_id "$image")" ]; then
        docker image rm "$previous" >/dev/null 2>&1 || log "kept the previous image $previous: a container uses it or another tag names it"
    fi
}

# Common image configuration. Labels follow the OCI image annotation keys.
common_changes() {
    printf '%s\n' \
        'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        'WORKDIR /workspace' \
        "LABEL org.opencontainers.image.version=$TAG" \
        'LABEL org.opencontainers.image.vendor=agentic-sandbox'
}

build_base() {
    local image=agentic/base:$TAG workdir=$1 inputs
    inputs=$(inputs_hash base/rootfs)
    if [ "$FORCE" -eq 0 ] && [ "$(image_inputs "$image")" = "$inputs" ]; then
        log "$image is up to date (inputs ${inputs:0:12})"
        return 0
    fi
    log "building $image (inputs ${inputs:0:12})"
    stage_base "$workdir/base"
    pack_rootfs "$workdir/base" "$workdir/base.tar"
    local changes=()
    mapfile -t changes < <(common_changes)
    import_rootfs "$workdir/base.tar" "$image" "$inputs" "${changes[@]}" \
        'CMD ["/bin/sh"]' \
        'LABEL org.opencontainers.image.title=agentic-sandbox-base' \
        'LABEL org.opencontainers.image.description="Busybox root filesystem with root and an unprivileged agent user (uid 10001)"' \
        'LABEL org.opencontainers.image.licenses=GPL-2.0-only'
}

build_demo() {
    local image=agentic/demo:$TAG workdir=$1 inputs
    inputs=$(inputs_hash base/rootfs demo/rootfs)
    if [ "$FORCE" -eq 0 ] && [ "$(image_inputs "$image")" = "$inputs" ]; then
        log "$image is up to date (inputs ${inputs:0:12})"
        return 0
    fi
    log "building $image (inputs ${inputs:0:12})"
    stage_demo "$workdir/demo"
    pack_rootfs "$workdir/demo" "$workdir/demo.tar"
    local changes=()
    mapfile -t changes < <(common_changes)
    import_rootfs "$workdir/demo.tar" "$image" "$inputs" "${changes[@]}" \
        'CMD ["/usr/local/bin/demo-sandbox"]' \
        'LABEL org.opencontainers.image.title=agentic-sandbox-demo' \
        'LABEL org.opencontainers.image.description="Demo sandbox that prints its hostname and env, then a heartbeat, and exits 0 on SIGTERM"' \
        "LABEL org.opencontainers.image.base.name=agentic/base:$TAG" \
        'LABEL org.opencontainers.image.licenses="GPL-2.0-only AND Apache-2.0"'
}

main() {
    parse_args "$@"
    check_prerequisites
    umask 022

    # Concurrent builds (parallel test sessions, for example) take turns, so a later build finds
    # the images that an earlier one imported.
    exec 9>"$LOCK_FILE"
    flock -w "$LOCK_TIMEOUT" 9 || die "another images/build.sh held $LOCK_FILE for ${LOCK_TIMEOUT} s; try again when it has finished"

    WORKDIR=$(mktemp -d "${TMPDIR:-/tmp}/agentic-sandbox-images.XXXXXX")
    trap 'rm -rf "$WORKDIR"' EXIT
    build_base "$WORKDIR"
    build_demo "$WORKDIR"
}

main "$@"
