#!/usr/bin/env bash
# Build the tiny test guest that the libvirt tests boot under QEMU, from Debian packages only:
#
#   vmlinuz     the Debian cloud kernel, taken from the package that linux-image-cloud-amd64
#               depends on (fetched with apt-get download and unpacked, never installed)
#   initrd.img  a gzip-compressed cpio (newc) initramfs: busybox, the kernel modules the guest
#               needs with their dependencies, and images/vm/guest/init as /init
#   disk.qcow2  the base disk: an empty ext4 file system of 64 MiB in a qcow2 image
#
# The files go to ${AGENTIC_SANDBOX_VM_IMAGES:-/var/lib/agentic-sandbox/images}/tiny/, readable
# by everyone, because QEMU under libvirt runs as the user libvirt-qemu.
#
# Work is skipped when its inputs are unchanged. The kernel and initramfs are rebuilt when the
# kernel package version, busybox, this script or a file under images/vm/guest/ changes. The
# disk is rebuilt only when its own recipe changes, so qcow2 overlays made on it stay valid; its
# bytes are reproducible (fixed UUID, hash seed and timestamps). The kernel package is kept in
# a cache directory, so a rebuild after a change to /init downloads nothing.
#
# Usage: images/vm/build-guest.sh [--force] [--offline]
#   --force    rebuild every file even when its inputs are unchanged
#   --offline  fail instead of running apt-get update, installing a package or downloading
# Environment:
#   AGENTIC_SANDBOX_VM_IMAGES  images directory (default /var/lib/agentic-sandbox/images)
#   AGENTIC_SANDBOX_VM_CACHE   kernel package cache (default: cache/ in the images directory)
#   AGENTIC_SANDBOX_BUSYBOX    statically linked busybox (default /bin/busybox from Debian's
#                              busybox-static package)

set -euo pipefail

VM_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
LOG_PREFIX="images/vm/build-guest.sh"
# shellcheck source-path=SCRIPTDIR source=../../scripts/lib.sh
source "$VM_DIR/../../scripts/lib.sh"

IMAGES_ROOT=${AGENTIC_SANDBOX_VM_IMAGES:-/var/lib/agentic-sandbox/images}
OUTPUT_DIR=$IMAGES_ROOT/tiny
CACHE_DIR=${AGENTIC_SANDBOX_VM_CACHE:-$IMAGES_ROOT/cache}
GUEST_DIR=$VM_DIR/guest
BUSYBOX=${AGENTIC_SANDBOX_BUSYBOX:-/bin/busybox}
KERNEL_METAPACKAGE=linux-image-cloud-amd64
# Modules the guest loads, by module name. Built-in ones are skipped. modprobe resolves the
# dependencies of the rest from the modules.dep that depmod writes for the unpacked kernel.
#   virtio_pci, virtio_blk  the disk (/dev/vda)
#   ext4                    its file system
#   virtio_scsi, sr_mod     the cloud-init seed CD-ROM, on a virtio-scsi controller
#   isofs                   the seed's ISO 9660 file system
#   button, evdev           the ACPI power button, as an input device that acpid reads
#   virtio_net              the network interface
GUEST_MODULES=(virtio_pci virtio_blk ext4 virtio_scsi sr_mod isofs button evdev virtio_net)
# Module parameters, as "module parameter=value". A synchronous SCSI scan makes the seed
# CD-ROM appear before insmod returns, so /init needs no wait for a device that may not exist.
MODULE_PARAMETERS=("scsi_mod scan=sync")
DISK_SIZE=64M
# The disk recipe: change DISK_VERSION whenever the disk's content or layout changes.
DISK_VERSION=1
DISK_UUID=6d1f0b6e-4a8e-4f41-9d2c-5a7d3c1e0b01
DISK_LABEL=agentic-disk
# Every file in the initramfs and on the disk gets this mtime (2000-01-01T00:00:00Z).
FIXED_MTIME=946684800
LOCK_TIMEOUT=300
FORCE=0
OFFLINE=0
WORKDIR=

usage() {
    cat <<'EOF_USAGE'
Usage: images/vm/build-guest.sh [--force] [--offline]
Build the tiny test guest (vmlinuz, initrd.img, disk.qcow2) in
${AGENTIC_SANDBOX_VM_IMAGES:-/var/lib/agentic-sandbox/images}/tiny/ when its inputs changed.
  --force    rebuild every file even when its inputs are unchanged
  --offline  fail instead of running apt-get update, installing a package or downloading
Environment: AGENTIC_SANDBOX_VM_CACHE sets the kernel package cache (default: cache/ in the
images directory); AGENTIC_SANDBOX_BUSYBOX sets the static busybox (default /bin/busybox).
EOF_USAGE
}

parse_args() {
    while [ "$#" -gt 0 ]; do
        case "$1" in
            --force) FORCE=1 ;;
            --offline) OFFLINE=1 ;;
            -h | --help)
                usage
                exit 0
                ;;
            *) die "unknown argument '$1'; usage: images/vm/build-guest.sh [--force] [--offline]" ;;
        esac
        shift
    done
}

check_prerequisites() {
    # cpio packs the initramfs, kmod's depmod and modprobe resolve module dependencies,
    # e2fsprogs makes the ext4 disk and qemu-utils converts it to qcow2.
    local packages=(busybox-static cpio kmod e2fsprogs qemu-utils) package
    if [ "$OFFLINE" -eq 1 ]; then
        for package in "${packages[@]}"; do
            package_installed "$package" || die "package $package is missing and --offline forbids installing it; run scripts/setup"
        done
    else
        ensure_packages "${packages[@]}"
    fi
    [ -x "$BUSYBOX" ] || die "busybox is missing at $BUSYBOX; install the busybox-static package or set AGENTIC_SANDBOX_BUSYBOX"
    # The initramfs has no C library, so a dynamically linked busybox would not start in it.
    if ldd "$BUSYBOX" >/dev/null 2>&1; then
        die "$BUSYBOX is dynamically linked; install the busybox-static package or set AGENTIC_SANDBOX_BUSYBOX to a static busybox"
    fi
}

# Print "PACKAGE VERSION" of the kernel package that the cloud kernel metapackage depends on,
# as the local package lists have it. Runs apt-get update once when the lists lack it.
kernel_package() {
    local package version
    package=$(apt-cache depends "$KERNEL_METAPACKAGE" 2>/dev/null | sed -n 's/^ *Depends: \(linux-image-[^ ]*\)$/\1/p' | head -n 1)
    if [ -z "$package" ]; then
        [ "$OFFLINE" -eq 0 ] || die "the package lists have no $KERNEL_METAPACKAGE and --offline forbids apt-get update; run apt-get update"
        [ "$(id -u)" -eq 0 ] || die "the package lists have no $KERNEL_METAPACKAGE; run apt-get update as root"
        log "running apt-get update because the package lists have no $KERNEL_METAPACKAGE"
        DEBIAN_FRONTEND=noninteractive apt-get update -q </dev/null >&2
        package=$(apt-cache depends "$KERNEL_METAPACKAGE" | sed -n 's/^ *Depends: \(linux-image-[^ ]*\)$/\1/p' | head -n 1)
    fi
    [ -n "$package" ] || die "found no kernel package that $KERNEL_METAPACKAGE depends on; check the apt sources"
    version=$(apt-cache policy "$package" | sed -n 's/^ *Candidate: //p')
    case "$version" in
        '' | '(none)') die "no version of $package is available; check the apt sources" ;;
    esac
    printf '%s %s\n' "$package" "$version"
}

# Print the sha256 over the kernel package, busybox, this script and the guest files, with
# their paths and modes.
boot_inputs() {
    local kernel=$1
    (
        echo "$kernel"
        sha256sum "$BUSYBOX" | cut -d' ' -f1
        sha256sum "$VM_DIR/build-guest.sh" | cut -d' ' -f1
        cd "$GUEST_DIR"
        find . -type f -printf '%p %m\n' | LC_ALL=C sort
        find . -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum
    ) | sha256sum | cut -d' ' -f1
}

disk_inputs() {
    printf '%s\n' "$DISK_VERSION" "$DISK_SIZE" "$DISK_UUID" "$DISK_LABEL" "$FIXED_MTIME" \
        "$(mke2fs -V 2>&1 | head -n 1)" | sha256sum | cut -d' ' -f1
}

# Return 0 when the stamp NAME records INPUTS and every listed output file exists.
up_to_date() {
    local name=$1 inputs=$2 file
    shift 2
    [ "$FORCE" -eq 0 ] || return 1
    [ "$(cat "$OUTPUT_DIR/$name.inputs" 2>/dev/null)" = "$inputs" ] || return 1
    for file in "$@"; do
        [ -f "$OUTPUT_DIR/$file" ] || return 1
    done
}

# Print the path of the kernel package PACKAGE=VERSION in the cache, downloading it first when
# it is missing. A download removes the older kernel packages from the cache.
cached_kernel_deb() {
    local package=$1 version=$2 deb
    for deb in "$CACHE_DIR/${package}"_*.deb; do
        if [ -f "$deb" ] && [ "$(dpkg-deb --field "$deb" Version)" = "$version" ]; then
            echo "$deb"
            return 0
        fi
    done
    [ "$OFFLINE" -eq 0 ] || die "$package $version is not in the cache $CACHE_DIR and --offline forbids downloading it; run images/vm/build-guest.sh without --offline"

    log "downloading $package $version into $CACHE_DIR" >&2
    local download
    mkdir -p "$CACHE_DIR"
    download=$(mktemp -d "$CACHE_DIR/.download.XXXXXX")
    # apt-get download writes to the current directory. It warns when its _apt user cannot
    # write there and then downloads as root, which is fine here.
    if ! (cd "$download" && apt-get download -q "$package=$version" 2>&1) |
        { grep -v '^W: Download is performed unsandboxed' || true; } >&2; then
        rm -rf "$download"
        die "apt-get download $package=$version failed; check the apt sources and the network"
    fi
    deb=$(find "$download" -maxdepth 1 -name "${package}_*.deb" | head -n 1)
    [ -n "$deb" ] || die "apt-get download $package=$version produced no .deb file"
    find "$CACHE_DIR" -maxdepth 1 -name 'linux-image-*.deb' -delete
    mv "$deb" "$CACHE_DIR/"
    rm -rf "$download"
    echo "$CACHE_DIR/$(basename "$deb")"
}

# Print the module files to load, one "PATH [PARAMETERS]" line each, dependencies first, with
# paths relative to the modules directory of RELEASE under ROOT.
resolve_modules() {
    local root=$1 release=$2 module steps line path seen=" "
    local modules_dir=$root/lib/modules/$release
    for module in "${GUEST_MODULES[@]}"; do
        steps=$(modprobe --dirname "$root" --set-version "$release" --show-depends "$module") ||
            die "modprobe failed to resolve module $module for kernel $release"
        while read -r line; do
            case "$line" in
                'builtin '*) continue ;;
                insmod\ *) path=${line#insmod } ;;
                *) die "unexpected modprobe output for $module: '$line'" ;;
            esac
            path=${path%% *}
            path=${path#"$modules_dir"/}
            case "$seen" in *" $path "*) continue ;; esac
            seen+="$path "
            printf '%s%s\n' "$path" "$(module_parameters "$path")"
        done <<<"$steps"
    done
}

# Print " PARAMETERS" for the module file PATH, or nothing.
module_parameters() {
    local name entry
    name=$(basename "$1" .ko)
    for entry in "${MODULE_PARAMETERS[@]}"; do
        [ "${entry%% *}" = "$name" ] && printf ' %s' "${entry#* }"
    done
    return 0
}

# Fill DIR with the initramfs tree: busybox and its applet links, the modules of RELEASE from
# KERNEL_ROOT with their load order, /init and the power button handler.
stage_initramfs() {
    local dir=$1 kernel_root=$2 release=$3 applet path
    mkdir -p "$dir"/{bin,sbin,usr/bin,usr/sbin,etc/agentic-sandbox,etc/acpi/PWRF,dev,proc,sys,run,tmp,mnt}
    cp "$BUSYBOX" "$dir/bin/busybox"
    while read -r applet; do
        # linuxrc is busybox's own init for an initramfs, and this one has /init instead.
        [ "$applet" = /linuxrc ] && continue
        [ -e "$dir/$applet" ] || [ -L "$dir/$applet" ] || ln -s /bin/busybox "$dir/$applet"
    done < <("$BUSYBOX" --list-full | sed 's|^|/|')

    resolve_modules "$kernel_root" "$release" >"$dir/etc/agentic-sandbox/modules"
    while read -r path _; do
        mkdir -p "$dir/lib/modules/$release/$(dirname "$path")"
        cp "$kernel_root/lib/modules/$release/$path" "$dir/lib/modules/$release/$path"
    done <"$dir/etc/agentic-sandbox/modules"
    log "initramfs has $(wc -l <"$dir/etc/agentic-sandbox/modules") modules for kernel $release"

    cp "$GUEST_DIR/init" "$dir/init"
    cp "$GUEST_DIR/power-button" "$dir/etc/acpi/PWRF/00000080"
    find "$dir" -type d -exec chmod 0755 {} +
    find "$dir" -type f -exec chmod 0644 {} +
    chmod 0755 "$dir/bin/busybox" "$dir/init" "$dir/etc/acpi/PWRF/00000080"
    chmod 1777 "$dir/tmp"
}

# Pack DIR into a gzip-compressed newc cpio at FILE, owned by root, with fixed mtimes.
pack_initramfs() {
    local dir=$1 file=$2
    find "$dir" -exec touch -h -d "@$FIXED_MTIME" {} +
    (cd "$dir" && find . -mindepth 1 -print0 | LC_ALL=C sort -z |
        cpio --null --create --format=newc --owner=0:0 --reproducible --quiet) | gzip -9 -n >"$file"
}

build_boot_files() {
    local kernel=$1 inputs=$2 package version release deb
    read -r package version <<<"$kernel"
    log "building vmlinuz and initrd.img from $package $version (inputs ${inputs:0:12})"
    deb=$(cached_kernel_deb "$package" "$version")
    mkdir -p "$WORKDIR/kernel"
    dpkg-deb --extract "$deb" "$WORKDIR/kernel/root"
    release=$(find "$WORKDIR/kernel/root/lib/modules" -mindepth 1 -maxdepth 1 -printf '%f\n' | head -n 1)
    [ -n "$release" ] || die "$package has no /lib/modules directory"
    depmod --basedir "$WORKDIR/kernel/root" "$release"

    stage_initramfs "$WORKDIR/initramfs" "$WORKDIR/kernel/root" "$release"
    pack_initramfs "$WORKDIR/initramfs" "$WORKDIR/initrd.img"
    cp "$WORKDIR/kernel/root/boot/vmlinuz-$release" "$WORKDIR/vmlinuz"
    chmod 0644 "$WORKDIR/vmlinuz" "$WORKDIR/initrd.img"
    # A rename replaces each file atomically, and a running QEMU read them at start-up.
    mv -f "$WORKDIR/vmlinuz" "$WORKDIR/initrd.img" "$OUTPUT_DIR/"
    echo "$inputs" >"$OUTPUT_DIR/boot.inputs"
    log "built $OUTPUT_DIR/vmlinuz and initrd.img ($(du -k "$OUTPUT_DIR/initrd.img" | cut -f1) KiB)"
}

build_disk() {
    local inputs=$1 content=$WORKDIR/disk-content
    log "building disk.qcow2 (inputs ${inputs:0:12})"
    mkdir -p "$content"
    printf 'agentic-sandbox tiny guest disk, recipe version %s\n' "$DISK_VERSION" >"$content/README"
    chmod 0755 "$content"
    chmod 0644 "$content/README"
    touch -d "@$FIXED_MTIME" "$content/README" "$content"
    # E2FSPROGS_FAKE_TIME fixes the file system's own timestamps. mkfs.ext4 -d copies each
    # file's ctime, which touch cannot set, so debugfs overwrites it to make the image
    # reproducible.
    E2FSPROGS_FAKE_TIME=$FIXED_MTIME mkfs.ext4 -q -F -L "$DISK_LABEL" -U "$DISK_UUID" \
        -E "hash_seed=$DISK_UUID,root_owner=0:0" -d "$content" "$WORKDIR/disk.raw" "$DISK_SIZE" >/dev/null
    (cd "$content" && find . -printf '/%P\n' && echo /lost+found) |
        sed "s|.*|set_inode_field & ctime @$FIXED_MTIME|" |
        E2FSPROGS_FAKE_TIME=$FIXED_MTIME debugfs -w -f - "$WORKDIR/disk.raw" >/dev/null 2>&1 ||
        die "debugfs failed to set the timestamps on the guest disk $WORKDIR/disk.raw"
    qemu-img convert -f raw -O qcow2 "$WORKDIR/disk.raw" "$WORKDIR/disk.qcow2"
    chmod 0644 "$WORKDIR/disk.qcow2"
    if [ -f "$OUTPUT_DIR/disk.qcow2" ] && ! cmp -s "$WORKDIR/disk.qcow2" "$OUTPUT_DIR/disk.qcow2"; then
        warn "replacing $OUTPUT_DIR/disk.qcow2 with different content; overlays made on the old disk are no longer valid"
    fi
    mv -f "$WORKDIR/disk.qcow2" "$OUTPUT_DIR/disk.qcow2"
    echo "$inputs" >"$OUTPUT_DIR/disk.inputs"
    log "built $OUTPUT_DIR/disk.qcow2"
}

# Warn about each directory from DIR up to / that other users cannot enter, because QEMU runs
# as libvirt-qemu and could not open the files.
warn_untraversable() {
    local dir=$1
    while [ "$dir" != / ]; do
        if [ -z "$(find "$dir" -maxdepth 0 -perm -o=x)" ]; then
            warn "other users cannot enter $dir, so QEMU under libvirt (user libvirt-qemu) cannot read the guest files; run chmod o+x $dir"
        fi
        dir=$(dirname "$dir")
    done
}

main() {
    parse_args "$@"
    check_prerequisites
    umask 022
    mkdir -p "$OUTPUT_DIR"
    chmod 0755 "$OUTPUT_DIR"
    warn_untraversable "$OUTPUT_DIR"

    # Concurrent builds take turns, so a later build finds the files an earlier one made.
    exec 9>"$IMAGES_ROOT/.build-guest.lock"
    flock -w "$LOCK_TIMEOUT" 9 || die "another build-guest.sh held $IMAGES_ROOT/.build-guest.lock for ${LOCK_TIMEOUT} s; try again when it has finished"

    local kernel boot disk
    kernel=$(kernel_package)
    boot=$(boot_inputs "$kernel")
    disk=$(disk_inputs)
    if up_to_date boot "$boot" vmlinuz initrd.img && up_to_date disk "$disk" disk.qcow2; then
        log "$OUTPUT_DIR is up to date (kernel $kernel, inputs ${boot:0:12} ${disk:0:12})"
        return 0
    fi

    # In the output's parent directory, so that mv renames instead of copying.
    WORKDIR=$(mktemp -d "$IMAGES_ROOT/.build-guest.XXXXXX")
    trap 'rm -rf "$WORKDIR"' EXIT
    up_to_date boot "$boot" vmlinuz initrd.img || build_boot_files "$kernel" "$boot"
    up_to_date disk "$disk" disk.qcow2 || build_disk "$disk"
}

# Run only when executed: images/vm/build-agent-guest.sh sources this file for its functions.
if [ "${BASH_SOURCE[0]}" = "$0" ]; then
    main "$@"
fi
