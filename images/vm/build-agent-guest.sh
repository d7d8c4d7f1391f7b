#!/usr/bin/env bash
# Build the agent guest: a virtual machine whose root file system is the agentic/agent image, so
# an Instance with the `agent` loadout runs the same agent as a container and becomes Ready when
# it registers. Three files, booted directly by the Debian cloud kernel:
#
#   vmlinuz     the kernel of the tiny guest (build-guest.sh), from the same cached package
#   initrd.img  a busybox initramfs whose /init (agent-guest/initramfs-init) loads the drivers,
#               mounts /dev/vda and switch_roots into it
#   disk.qcow2  an ext4 root file system made with `mkfs.ext4 -d` from `docker export` of the
#               agent image, with no loop mount. /opt/agentic-guest on it contains a static
#               busybox, the guest's PID 1 (agent-guest/init), the power button and DHCP
#               scripts, and seed.py with PyYAML, which applies the cloud-init seed's files
#               (the sandbox env among them)
#
# The files go to ${AGENTIC_SANDBOX_VM_IMAGES:-/var/lib/agentic-sandbox/images}/agent/,
# readable by everyone, because QEMU under libvirt runs as the user libvirt-qemu.
#
# Work is skipped when its inputs are unchanged: the kernel and initramfs follow the kernel
# package, busybox and the initramfs files; the disk follows the agent image's id, busybox and
# the files under agent-guest/. A new disk replaces the old one, which invalidates the qcow2
# overlays of VMs made on it: recreate those instances.
#
# Usage: images/vm/build-agent-guest.sh [--force] [--offline] [--image IMAGE]
#   --force    rebuild every file even when its inputs are unchanged
#   --offline  fail instead of running apt-get update, installing a package or downloading
#   --image    the agent image to export (default agentic/agent:dev; build it with
#              images/agent/build.sh)

set -euo pipefail

AGENT_GUEST_SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source-path=SCRIPTDIR source=build-guest.sh
source "$AGENT_GUEST_SCRIPT_DIR/build-guest.sh"
LOG_PREFIX="images/vm/build-agent-guest.sh"

OUTPUT_DIR=$IMAGES_ROOT/agent
AGENT_GUEST_DIR=$VM_DIR/agent-guest
AGENT_IMAGE=agentic/agent:dev
# Where the guest's own files go on the root disk.
GUEST_ROOT_DIR=opt/agentic-guest
# seed.py reads the seed's YAML with PyYAML, as cloud-init does.
SEED_REQUIREMENTS=("PyYAML>=6,<7")
# Free space on the root file system beyond the agent image's files, in MiB.
ROOT_FREE_MIB=1024
ROOT_LABEL=agentic-root
# The disk recipe: change ROOT_DISK_VERSION whenever build_root_disk changes what it makes.
ROOT_DISK_VERSION=1

agent_usage() {
    sed -n '2,/^$/p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
}

parse_agent_args() {
    while [ "$#" -gt 0 ]; do
        case "$1" in
            --force) FORCE=1 ;;
            --offline) OFFLINE=1 ;;
            --image)
                [ "$#" -ge 2 ] || die "--image needs a value, for example --image agentic/agent:dev"
                AGENT_IMAGE=$2
                shift
                ;;
            -h | --help)
                agent_usage
                exit 0
                ;;
            *) die "unknown argument '$1'; usage: images/vm/build-agent-guest.sh [--force] [--offline] [--image IMAGE]" ;;
        esac
        shift
    done
}

check_agent_prerequisites() {
    check_prerequisites
    command -v docker >/dev/null || die "the docker command is missing; run scripts/setup"
    [ "$(id -u)" -eq 0 ] || die "extracting the agent image keeps its file owners only as root; run this script as root"
    "$VENV_DIR/bin/python" -m pip --version >/dev/null 2>&1 || die "the project venv at $VENV_DIR has no pip; run scripts/setup"
    docker image inspect "$AGENT_IMAGE" >/dev/null 2>&1 ||
        die "image $AGENT_IMAGE is missing; build it with images/agent/build.sh"
    local carries
    carries=$(docker image inspect --format '{{ index .Config.Labels "dev.agentic.agent" }}' "$AGENT_IMAGE")
    [ "$carries" = true ] || die "image $AGENT_IMAGE lacks the label dev.agentic.agent=true, so it does not run the agent"
}

agent_boot_inputs() {
    local kernel=$1
    (
        echo "$kernel"
        printf '%s\n' "${GUEST_MODULES[@]}" "${MODULE_PARAMETERS[@]}"
        sha256sum "$BUSYBOX" | cut -d' ' -f1
        sed -n '/^stage_agent_initramfs()/,/^}/p' "${BASH_SOURCE[0]}"
        sha256sum "$AGENT_GUEST_DIR/initramfs-init" | cut -d' ' -f1
    ) | sha256sum | cut -d' ' -f1
}

agent_disk_inputs() {
    (
        printf '%s\n' "$ROOT_DISK_VERSION" "$ROOT_FREE_MIB" "$ROOT_LABEL" "${SEED_REQUIREMENTS[@]}"
        docker image inspect --format '{{ .Id }}' "$AGENT_IMAGE"
        sha256sum "$BUSYBOX" | cut -d' ' -f1
        sed -n '/^build_root_disk()/,/^}/p;/^stage_guest_files()/,/^}/p' "${BASH_SOURCE[0]}"
        cd "$AGENT_GUEST_DIR"
        find . -type f -printf '%p %m\n' | LC_ALL=C sort
        find . -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum
    ) | sha256sum | cut -d' ' -f1
}

# Fill DIR with the initramfs tree: busybox and its applets, the modules of RELEASE from
# KERNEL_ROOT with their load order, and initramfs-init as /init.
stage_agent_initramfs() {
    local dir=$1 kernel_root=$2 release=$3 applet path
    mkdir -p "$dir"/{bin,sbin,usr/bin,usr/sbin,etc/agentic-sandbox,dev,proc,sys,newroot}
    cp "$BUSYBOX" "$dir/bin/busybox"
    while read -r applet; do
        [ "$applet" = /linuxrc ] && continue
        [ -e "$dir/$applet" ] || [ -L "$dir/$applet" ] || ln -s /bin/busybox "$dir/$applet"
    done < <("$BUSYBOX" --list-full | sed 's|^|/|')

    resolve_modules "$kernel_root" "$release" >"$dir/etc/agentic-sandbox/modules"
    while read -r path _; do
        mkdir -p "$dir/lib/modules/$release/$(dirname "$path")"
        cp "$kernel_root/lib/modules/$release/$path" "$dir/lib/modules/$release/$path"
    done <"$dir/etc/agentic-sandbox/modules"

    cp "$AGENT_GUEST_DIR/initramfs-init" "$dir/init"
    find "$dir" -type d -exec chmod 0755 {} +
    find "$dir" -type f -exec chmod 0644 {} +
    chmod 0755 "$dir/bin/busybox" "$dir/init"
}

build_agent_boot_files() {
    local kernel=$1 inputs=$2 package version release deb
    read -r package version <<<"$kernel"
    log "building vmlinuz and initrd.img from $package $version (inputs ${inputs:0:12})"
    deb=$(cached_kernel_deb "$package" "$version")
    mkdir -p "$WORKDIR/kernel"
    dpkg-deb --extract "$deb" "$WORKDIR/kernel/root"
    release=$(find "$WORKDIR/kernel/root/lib/modules" -mindepth 1 -maxdepth 1 -printf '%f\n' | head -n 1)
    [ -n "$release" ] || die "$package has no /lib/modules directory"
    depmod --basedir "$WORKDIR/kernel/root" "$release"

    stage_agent_initramfs "$WORKDIR/initramfs" "$WORKDIR/kernel/root" "$release"
    pack_initramfs "$WORKDIR/initramfs" "$WORKDIR/initrd.img"
    cp "$WORKDIR/kernel/root/boot/vmlinuz-$release" "$WORKDIR/vmlinuz"
    chmod 0644 "$WORKDIR/vmlinuz" "$WORKDIR/initrd.img"
    mv -f "$WORKDIR/vmlinuz" "$WORKDIR/initrd.img" "$OUTPUT_DIR/"
    echo "$inputs" >"$OUTPUT_DIR/boot.inputs"
    rm -rf "$WORKDIR/kernel" "$WORKDIR/initramfs"
    log "built $OUTPUT_DIR/vmlinuz and initrd.img"
}

# Add /opt/agentic-guest to the root tree ROOT: busybox with its applets, the guest scripts,
# seed.py and PyYAML. Replace the files Docker manages in a container with guest ones.
stage_guest_files() {
    local root=$1 guest=$1/$GUEST_ROOT_DIR applet
    mkdir -p "$guest/bin" "$guest/lib"
    cp "$BUSYBOX" "$guest/bin/busybox"
    while read -r applet; do
        ln -sf busybox "$guest/bin/$applet"
    done < <("$BUSYBOX" --list | grep -vx 'busybox\|linuxrc')
    cp "$AGENT_GUEST_DIR/init" "$AGENT_GUEST_DIR/power-button" "$AGENT_GUEST_DIR/udhcpc-script" \
        "$AGENT_GUEST_DIR/seed.py" "$guest/"
    "$VENV_DIR/bin/python" -m pip install --quiet --no-compile --no-deps --target "$guest/lib" \
        "${SEED_REQUIREMENTS[@]}" || die "pip failed to install ${SEED_REQUIREMENTS[*]} for seed.py"
    chmod -R a+rX,go-w "$guest"
    chmod 0755 "$guest/init" "$guest/power-button" "$guest/udhcpc-script"

    # Docker bind-mounts these into a running container; a VM gets its own at boot.
    rm -f "$root/.dockerenv"
    rm -rf "${root:?}/dev" && mkdir -m 0755 "$root/dev"
    printf 'agentic-sandbox\n' >"$root/etc/hostname"
    printf '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n' >"$root/etc/hosts"
    : >"$root/etc/resolv.conf"
    chmod 0644 "$root/etc/hostname" "$root/etc/hosts" "$root/etc/resolv.conf"
    mkdir -p "$root/etc/agentic-sandbox"
}

build_root_disk() {
    local inputs=$1 root=$WORKDIR/root container used_mib size_mib
    log "building disk.qcow2 from $AGENT_IMAGE (inputs ${inputs:0:12})"
    mkdir -p "$root"
    container=$(docker create "$AGENT_IMAGE" /bin/true)
    # Numeric owners: the image's users (such as agent, uid 10001) need not exist on this host.
    if ! docker export "$container" | tar -C "$root" --numeric-owner --same-permissions -xf -; then
        docker rm -f "$container" >/dev/null 2>&1 || true
        die "docker export of $AGENT_IMAGE failed"
    fi
    docker rm -f "$container" >/dev/null
    stage_guest_files "$root"

    used_mib=$(du -sm --apparent-size "$root" | cut -f1)
    # ext4 metadata and block rounding take about a quarter more than the files' own size.
    size_mib=$((used_mib + used_mib / 4 + ROOT_FREE_MIB))
    # -m 1: the agent runs as an unprivileged user, which cannot use reserved blocks.
    mkfs.ext4 -q -F -L "$ROOT_LABEL" -m 1 -E root_owner=0:0 -d "$root" \
        "$WORKDIR/disk.raw" "${size_mib}M" >/dev/null ||
        die "mkfs.ext4 failed to make the root file system from $root"
    rm -rf --one-file-system "$root"
    qemu-img convert -f raw -O qcow2 "$WORKDIR/disk.raw" "$WORKDIR/disk.qcow2"
    rm -f "$WORKDIR/disk.raw"
    chmod 0644 "$WORKDIR/disk.qcow2"
    if [ -f "$OUTPUT_DIR/disk.qcow2" ]; then
        warn "replacing $OUTPUT_DIR/disk.qcow2; overlays made on the old disk are no longer valid, so recreate their instances"
    fi
    mv -f "$WORKDIR/disk.qcow2" "$OUTPUT_DIR/disk.qcow2"
    echo "$inputs" >"$OUTPUT_DIR/disk.inputs"
    log "built $OUTPUT_DIR/disk.qcow2 (${size_mib} MiB file system, ${used_mib} MiB of files)"
}

agent_main() {
    parse_agent_args "$@"
    check_agent_prerequisites
    umask 022
    mkdir -p "$OUTPUT_DIR"
    chmod 0755 "$OUTPUT_DIR"
    warn_untraversable "$OUTPUT_DIR"

    # The same lock as build-guest.sh, because both write the kernel package cache.
    exec 9>"$IMAGES_ROOT/.build-guest.lock"
    flock -w "$LOCK_TIMEOUT" 9 || die "another guest build held $IMAGES_ROOT/.build-guest.lock for ${LOCK_TIMEOUT} s; try again when it has finished"

    local kernel boot disk
    kernel=$(kernel_package)
    boot=$(agent_boot_inputs "$kernel")
    disk=$(agent_disk_inputs)
    if up_to_date boot "$boot" vmlinuz initrd.img && up_to_date disk "$disk" disk.qcow2; then
        log "$OUTPUT_DIR is up to date (kernel $kernel, inputs ${boot:0:12} ${disk:0:12})"
        return 0
    fi

    WORKDIR=$(mktemp -d "$IMAGES_ROOT/.build-agent-guest.XXXXXX")
    trap 'rm -rf --one-file-system "$WORKDIR"' EXIT
    up_to_date boot "$boot" vmlinuz initrd.img || build_agent_boot_files "$kernel" "$boot"
    up_to_date disk "$disk" disk.qcow2 || build_root_disk "$disk"
}

agent_main "$@"
