#!/bin/bash
# Build steps that images/providers/build.sh runs as root inside a build container. The script
# is copied to /tmp, runs once, and removes itself so the committed image does not carry it.
#
#   in-image.sh node MIRROR SECURITY_MIRROR
#       Install Debian bookworm's nodejs and npm, with the bookworm-security suite enabled so
#       that the image gets Node's security updates.
#   in-image.sh tool PACKAGE COMMAND [APT_PACKAGE...]
#       Finish a tool that the host staged under /usr/local with `npm install --ignore-scripts`.
#       Install its Debian packages and run its npm install scripts here with the image's Node.
#       Then check its engines field, remove unused platform builds and run `COMMAND --version`.
#
# apt's package archive directory is a bind mount of the host's cache, so the downloaded .deb
# files stay on the host and out of the image.

set -euo pipefail

export DEBIAN_FRONTEND=noninteractive
NPM_PREFIX=/usr/local
NPM_ROOT=$NPM_PREFIX/lib/node_modules
# Debian's npm depends on node-semver, which installs here.
SEMVER_MODULE=/usr/share/nodejs/semver

log() {
    printf 'in-image.sh: %s\n' "$*"
}

die() {
    printf 'in-image.sh: error: %s\n' "$*" >&2
    exit 1
}

apt_install() {
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "$@" >/dev/null
    rm -rf /var/lib/apt/lists/*
}

install_node() {
    local mirror=$1 security_mirror=$2
    printf 'deb %s bookworm main\n' "$mirror" >/etc/apt/sources.list
    printf 'deb %s bookworm-security main\n' "$security_mirror" >/etc/apt/sources.list.d/debian-security.list
    apt_install nodejs npm
    [ -f "$SEMVER_MODULE/package.json" ] || die "node-semver is missing at $SEMVER_MODULE"
    log "installed node $(node --version) and npm $(npm --version)"
}

# Print "ok RANGE", "mismatch RANGE" or "none" for the engines.node field of a package.json.
engines_status() {
    node -e '
const semver = require(process.argv[2]);
const range = (require(process.argv[1]).engines || {}).node;
if (!range) console.log("none");
else console.log((semver.satisfies(process.version, range) ? "ok " : "mismatch ") + range);
' "$1" "$SEMVER_MODULE"
}

is_native_executable() {
    [ "$(head -c 4 "$1" | od -An -c | tr -d ' ')" = '177ELF' ]
}

# Remove the platform packages (those whose package.json has an "os" field) under PACKAGE_DIR
# that hold no hard link of TARGET. Install scripts link the build they chose, for example
# opencode-ai's choice between its AVX2 and baseline builds, so the others are unused.
prune_platform_packages() {
    local package_dir=$1 target=$2 manifest dir
    [ -d "$package_dir/node_modules" ] || return 0
    while read -r manifest; do
        dir=$(dirname "$manifest")
        grep -q '"os"' "$manifest" || continue
        if [ -z "$(find "$dir" -samefile "$target" -print -quit)" ]; then
            log "removing unused platform package ${dir#"$NPM_ROOT"/}"
            rm -rf "$dir"
        fi
    done < <(find "$package_dir/node_modules" -mindepth 2 -maxdepth 3 -name package.json)
}

check_engines() {
    local package=$1 target=$2 status
    status=$(engines_status "$NPM_ROOT/$package/package.json")
    case "$status" in
        none) log "$package has no engines field; node $(node --version)" ;;
        ok\ *) log "$package engines node ${status#ok } accepts node $(node --version)" ;;
        mismatch\ *)
            is_native_executable "$target" \
                || die "$package asks for node ${status#mismatch } but the image has $(node --version); pin a version that accepts it"
            log "$package asks for node ${status#mismatch } but its command is a native executable that does not run on node $(node --version)"
            ;;
    esac
}

install_tool() {
    local package=$1 command=$2 target
    shift 2
    if [ "$#" -gt 0 ]; then
        log "installing Debian packages: $*"
        apt_install "$@"
    fi
    [ -d "$NPM_ROOT/$package" ] || die "$package is not staged under $NPM_ROOT"

    # --offline: install scripts must not fetch anything; the host staged every package.
    log "running the npm install scripts of $package"
    npm rebuild --global --offline --foreground-scripts --no-update-notifier "$package"

    target=$(readlink -f "$NPM_PREFIX/bin/$command") || die "$NPM_PREFIX/bin/$command is missing"
    [ -x "$target" ] || die "$command resolves to $target, which is not executable"
    check_engines "$package" "$target"
    if is_native_executable "$target"; then
        prune_platform_packages "$NPM_ROOT/$package" "$target"
    fi
    log "$command --version: $("$command" --version 2>&1 | head -1)"
    rm -rf /root/.npm /root/.cache /tmp/* /var/tmp/*
}

main() {
    # The script leaves the image whatever the outcome.
    rm -f "${BASH_SOURCE[0]}"
    case "${1:-}" in
        node) install_node "$2" "$3" ;;
        tool) shift && install_tool "$@" ;;
        *) die "unknown step '${1:-}'; expected 'node' or 'tool'" ;;
    esac
}

main "$@"
