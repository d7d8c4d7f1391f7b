# Shared functions for the set-up, run and test scripts. Source it; do not run it.
#
# Every function is idempotent: it checks the current state first and changes only what is
# missing, so running a script twice does no extra work.

# shellcheck shell=bash

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV_DIR="$REPO_ROOT/.venv"
# Records the sha256 of the pyproject.toml that the venv was installed from.
VENV_STAMP="$VENV_DIR/.agentic-sandbox-pyproject.sha256"
DOCKERD_LOG=${AGENTIC_SANDBOX_DOCKERD_LOG:-/var/log/agentic-sandbox-dockerd.log}
DOCKERD_PIDFILE=${AGENTIC_SANDBOX_DOCKERD_PIDFILE:-/run/agentic-sandbox-dockerd.pid}
DOCKERD_START_TIMEOUT=${AGENTIC_SANDBOX_DOCKERD_TIMEOUT:-60}
LOG_PREFIX=${LOG_PREFIX:-$(basename "$0")}

_APT_UPDATED=0

log() {
    printf '%s: %s\n' "$LOG_PREFIX" "$*"
}

warn() {
    printf '%s: warning: %s\n' "$LOG_PREFIX" "$*" >&2
}

die() {
    printf '%s: error: %s\n' "$LOG_PREFIX" "$*" >&2
    exit 1
}

is_ci() {
    case "${CI:-}" in
        true | TRUE | True | 1 | yes) return 0 ;;
        *) return 1 ;;
    esac
}

# Print the sha256 of a file, or nothing when the file is missing.
file_sha256() {
    [ -f "$1" ] && sha256sum "$1" | cut -d' ' -f1
}

# Return 0 when PID names a live process whose command line contains PATTERN (when given), so
# that a PID reused by an unrelated process is not mistaken for ours.
pid_alive() {
    local pid=$1 pattern=${2:-}
    case "$pid" in '' | *[!0-9]*) return 1 ;; esac
    kill -0 "$pid" 2>/dev/null || return 1
    [ -z "$pattern" ] && return 0
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- "$pattern"
}

# Print the PID stored in FILE, or nothing when the file is missing or empty.
read_pidfile() {
    [ -f "$1" ] && tr -d '[:space:]' <"$1"
}

package_installed() {
    dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'
}

# Install the given Debian packages that are not installed yet, running `apt-get update` once
# per script run before the first install.
ensure_packages() {
    local missing=() package
    for package in "$@"; do
        package_installed "$package" || missing+=("$package")
    done
    [ "${#missing[@]}" -eq 0 ] && return 0

    [ "$(id -u)" -eq 0 ] || die "packages ${missing[*]} are missing; run as root or install them with: sudo apt-get install ${missing[*]}"
    command -v apt-get >/dev/null || die "packages ${missing[*]} are missing and apt-get is not available; install them by hand"
    if [ "$_APT_UPDATED" -eq 0 ]; then
        log "running apt-get update"
        DEBIAN_FRONTEND=noninteractive apt-get update -q </dev/null
        _APT_UPDATED=1
    fi
    log "installing ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" </dev/null
}

docker_responds() {
    timeout 20 docker version >/dev/null 2>&1
}

# Start dockerd in the background unless a Docker Engine already responds, then wait until it
# responds or DOCKERD_START_TIMEOUT seconds pass.
ensure_dockerd() {
    command -v docker >/dev/null || die "the docker command is missing; install the docker.io package"
    if docker_responds; then
        log "Docker Engine is running"
        return 0
    fi
    case "${DOCKER_HOST:-}" in
        '' | unix:///var/run/docker.sock | unix:///run/docker.sock) ;;
        *) die "the Docker Engine at DOCKER_HOST=$DOCKER_HOST does not respond; start it, or unset DOCKER_HOST to use the local one" ;;
    esac
    command -v dockerd >/dev/null || die "dockerd is missing; install the docker.io package"
    [ "$(id -u)" -eq 0 ] || die "the Docker Engine is not running and starting dockerd needs root; run this script as root"

    local pid
    pid=$(read_pidfile "$DOCKERD_PIDFILE" || true)
    if pid_alive "$pid" dockerd; then
        log "dockerd (PID $pid) is starting; waiting for it"
    else
        log "starting dockerd in the background, log in $DOCKERD_LOG"
        nohup dockerd >>"$DOCKERD_LOG" 2>&1 </dev/null &
        pid=$!
        echo "$pid" >"$DOCKERD_PIDFILE"
    fi
    wait_for_dockerd "$pid"
}

# Wait until CHECK (a function) succeeds for the daemon NAME started as PID, or TIMEOUT seconds
# pass; die with the tail of LOG when the daemon exits or the time runs out.
wait_for_daemon() {
    local name=$1 pid=$2 log_file=$3 timeout=$4 check=$5
    local deadline=$((SECONDS + timeout))
    until "$check"; do
        if ! pid_alive "$pid" "$name"; then
            tail -n 20 "$log_file" >&2 || true
            die "$name (PID $pid) exited during start-up; its log is above and in $log_file"
        fi
        if [ "$SECONDS" -ge "$deadline" ]; then
            tail -n 20 "$log_file" >&2 || true
            die "$name (PID $pid) did not respond within ${timeout} s; see $log_file"
        fi
        sleep 0.5
    done
}

wait_for_dockerd() {
    wait_for_daemon dockerd "$1" "$DOCKERD_LOG" "$DOCKERD_START_TIMEOUT" docker_responds
    log "Docker Engine is running (dockerd PID $1)"
}

# Print a Python 3.11+ interpreter that can create a venv: $PYTHON, python3 on PATH, or Debian's
# /usr/bin/python3 (installing python3-venv for it when needed).
find_python() {
    local candidate
    for candidate in ${PYTHON:-} python3 /usr/bin/python3; do
        command -v "$candidate" >/dev/null 2>&1 || continue
        "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null || continue
        if ! "$candidate" -c 'import ensurepip, venv' 2>/dev/null; then
            [ "$(command -v "$candidate")" = /usr/bin/python3 ] || continue
            ensure_packages python3-venv >&2
        fi
        command -v "$candidate"
        return 0
    done
    die "no Python 3.11 or newer found; install it (apt-get install python3 python3-venv) or set PYTHON"
}

# Create .venv and install the package editable with its test extras, unless the venv was
# already installed from the current pyproject.toml.
LIBVIRTD_LOG=${AGENTIC_SANDBOX_LIBVIRTD_LOG:-/var/log/agentic-sandbox-libvirtd.log}
LIBVIRTD_PIDFILE=${AGENTIC_SANDBOX_LIBVIRTD_PIDFILE:-/run/agentic-sandbox-libvirtd.pid}
VIRTLOGD_PIDFILE=${AGENTIC_SANDBOX_VIRTLOGD_PIDFILE:-/run/agentic-sandbox-virtlogd.pid}
LIBVIRTD_START_TIMEOUT=${AGENTIC_SANDBOX_LIBVIRTD_TIMEOUT:-60}

libvirtd_responds() {
    timeout 20 virsh -c qemu:///system version >/dev/null 2>&1
}

# Start a daemon in the background with nohup unless PIDFILE names a live one; print its PID.
start_daemon() {
    local name=$1 pidfile=$2 logfile=$3 pid
    shift 3
    pid=$(read_pidfile "$pidfile" || true)
    if pid_alive "$pid" "$name"; then
        echo "$pid"
        return 0
    fi
    nohup "$@" >>"$logfile" 2>&1 </dev/null &
    pid=$!
    echo "$pid" >"$pidfile"
    echo "$pid"
}

# Start virtlogd and libvirtd in the background unless libvirtd already responds on
# qemu:///system, then wait until it responds or LIBVIRTD_START_TIMEOUT seconds pass. There is
# no init system here, so the daemons run without socket activation.
# Give /dev/kvm the owner and mode that udev gives it on a machine with an init system (group
# kvm, which QEMU's user libvirt-qemu belongs to). Without it libvirtd finds KVM while probing
# QEMU as root but not when checking as libvirt-qemu, throws its capability cache away on every
# call, and each define then takes about a minute.
ensure_kvm_device_access() {
    [ -c /dev/kvm ] || return 0
    [ "$(id -u)" -eq 0 ] || return 0
    getent group kvm >/dev/null || return 0
    if [ "$(stat -c %G /dev/kvm)" != kvm ] || [ $((0$(stat -c %a /dev/kvm) & 060)) -ne $((060)) ]; then
        log "giving /dev/kvm to group kvm (mode 0660), as udev does"
        chgrp kvm /dev/kvm
        chmod g+rw /dev/kvm
    fi
}

ensure_libvirtd() {
    command -v virsh >/dev/null || die "virsh is missing; install the libvirt-clients package"
    ensure_kvm_device_access
    if libvirtd_responds; then
        log "libvirtd is running"
        return 0
    fi
    [ "$(id -u)" -eq 0 ] || die "libvirtd is not running and starting it needs root; run this script as root"
    command -v libvirtd >/dev/null || die "libvirtd is missing; install the libvirt-daemon-system package"

    local virtlogd_pid libvirtd_pid
    log "starting virtlogd and libvirtd in the background, log in $LIBVIRTD_LOG"
    virtlogd_pid=$(start_daemon virtlogd "$VIRTLOGD_PIDFILE" "$LIBVIRTD_LOG" virtlogd)
    libvirtd_pid=$(start_daemon libvirtd "$LIBVIRTD_PIDFILE" "$LIBVIRTD_LOG" libvirtd)
    wait_for_daemon libvirtd "$libvirtd_pid" "$LIBVIRTD_LOG" "$LIBVIRTD_START_TIMEOUT" libvirtd_responds
    log "libvirtd is running (libvirtd PID $libvirtd_pid, virtlogd PID $virtlogd_pid)"
}

ensure_venv() {
    local wanted
    wanted=$(file_sha256 "$REPO_ROOT/pyproject.toml")
    if [ -x "$VENV_DIR/bin/sandboxctl" ] && [ "$(cat "$VENV_STAMP" 2>/dev/null)" = "$wanted" ]; then
        log "venv $VENV_DIR is up to date"
        return 0
    fi
    if [ ! -x "$VENV_DIR/bin/python" ]; then
        local python
        python=$(find_python)
        log "creating venv $VENV_DIR with $python"
        "$python" -m venv "$VENV_DIR"
    fi
    log "installing agentic-sandbox (editable, with test extras) into $VENV_DIR"
    "$VENV_DIR/bin/python" -m pip install -q --disable-pip-version-check -e "${REPO_ROOT}[test]"
    echo "$wanted" >"$VENV_STAMP"
}

# Return 0 when something accepts TCP connections on 127.0.0.1:PORT.
port_in_use() {
    "$VENV_DIR/bin/python" - "$1" <<'EOF'
import socket
import sys

with socket.socket() as probe:
    probe.settimeout(2)
    sys.exit(0 if probe.connect_ex(("127.0.0.1", int(sys.argv[1]))) == 0 else 1)
EOF
}

# Wait until URL returns HTTP 200, or fail after TIMEOUT seconds. Uses Python because curl
# may be missing. Returns 2 when WATCH_PID is given and that process exits first.
wait_for_http() {
    local url=$1 timeout=$2 watch_pid=${3:-}
    "$VENV_DIR/bin/python" - "$url" "$timeout" "$watch_pid" <<'EOF'
import sys
import time
import urllib.request

url, timeout, watch_pid = sys.argv[1], float(sys.argv[2]), sys.argv[3]
# No proxy: the URL is on this machine, and http_proxy must not redirect it.
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
deadline = time.monotonic() + timeout
while True:
    try:
        with opener.open(url, timeout=2) as response:
            if response.status == 200:
                sys.exit(0)
    except OSError:
        pass
    if watch_pid:
        # A child that exited stays a zombie (state Z) until its parent reaps it.
        try:
            with open(f"/proc/{watch_pid}/stat") as stat_file:
                stat = stat_file.read()
        except FileNotFoundError:
            sys.exit(2)
        if stat.rsplit(")", 1)[1].split()[0] == "Z":
            sys.exit(2)
    if time.monotonic() >= deadline:
        sys.exit(1)
    time.sleep(0.25)
EOF
}
