#!/usr/bin/env bash
# Builds the pinned Prometheus server and promtool from their Go module into a cache folder
# outside the repo, and prints that folder as the LAST line of stdout:
#
#     bin="$(tests/cluster/build_prometheus.sh | tail -1)"
#
# Progress goes to stderr so it stays visible while stdout is captured.
# The pin must match tests/cluster/prometheus.py (PROMETHEUS_VERSION); the folder name carries
# it, so changing the pin builds into a new folder and an unchanged pin is a no-op.
set -euo pipefail

# The Go module's v0.<minor>.<patch> tags are Prometheus 3.<minor>.<patch> releases.
PROMETHEUS_VERSION="v0.316.0"
BINARIES=(promtool prometheus)

GO="${GO:-/usr/local/go/bin/go}"
CACHE_ROOT="${XDG_CACHE_HOME:-$HOME/.cache}/continuable"
PIN_DIR="${CACHE_ROOT}/prometheus-${PROMETHEUS_VERSION}"
BIN_DIR="${PIN_DIR}/bin"

START_TS=$(date +%s)
log() { echo "==> $* (+$(( $(date +%s) - START_TS ))s)" >&2; }

has_all() {
    local dir="$1" name
    for name in "${BINARIES[@]}"; do
        [[ -x "${dir}/${name}" ]] || return 1
    done
}

# A prebuilt folder (CI cache, a distribution's package) wins: nothing to build.
if [[ -n "${CONTINUABLE_PROMETHEUS_BIN:-}" ]]; then
    if has_all "${CONTINUABLE_PROMETHEUS_BIN}"; then
        echo "${CONTINUABLE_PROMETHEUS_BIN}"
        exit 0
    fi
    log "CONTINUABLE_PROMETHEUS_BIN=${CONTINUABLE_PROMETHEUS_BIN} lacks some of ${BINARIES[*]}; using ${BIN_DIR}"
fi

# .complete is written last, so its presence means a whole, finished build.
if [[ -f "${BIN_DIR}/.complete" ]] && has_all "${BIN_DIR}"; then
    echo "${BIN_DIR}"
    exit 0
fi

mkdir -p "${PIN_DIR}"
# Two callers (make and pytest, two terminals) must not build the same folder at once.
exec 9>"${PIN_DIR}/.lock"
if ! flock -n 9; then
    log "another build of ${BIN_DIR} is running; waiting for it"
    flock 9
fi
if [[ -f "${BIN_DIR}/.complete" ]] && has_all "${BIN_DIR}"; then
    echo "${BIN_DIR}"
    exit 0
fi

command -v "${GO}" >/dev/null || { echo "error: go not found at ${GO} (set GO=...)" >&2; exit 1; }
log "building into ${BIN_DIR} with $("${GO}" version)"

WORK="$(mktemp -d "${TMPDIR:-/tmp}/continuable-prometheus-build.XXXXXX")"
# Binaries land in a staging folder beside the final one; it is renamed into place only when
# everything built, so an interrupted build never leaves a folder that looks complete.
STAGE="$(mktemp -d "${PIN_DIR}/bin.partial.XXXXXX")"
chmod 755 "${STAGE}"  # mktemp makes it 0700; the binaries are for every user of the machine
cleanup() { rm -rf "${WORK}" "${STAGE}"; }
trap cleanup EXIT
# Turn Ctrl-C / SIGTERM into a normal exit so the EXIT trap removes the partial build.
trap 'exit 130' INT
trap 'exit 143' TERM

# GOFLAGS may carry machine defaults (e.g. -buildvcs=false); keep them and add -mod=mod so the
# throwaway module may update its own go.mod/go.sum.
export GOFLAGS="${GOFLAGS:-} -mod=mod"
# The machine's Go, not one fetched by GOTOOLCHAIN, so the build is the same everywhere.
export GOTOOLCHAIN="${GOTOOLCHAIN:-local}"
BUILD_DATE="$(date -u +%Y%m%d-%H:%M:%S)"
TIMES_FILE="${WORK}/build-times.txt"
phase_start=0
phase() { phase_start=$(date +%s); log "$*"; }
phase_done() {
    local secs=$(( $(date +%s) - phase_start ))
    echo "$1 ${secs}s" >>"${TIMES_FILE}"
    log "$1 done in ${secs}s"
}

# A throwaway module that requires the pinned version (as for etcd and helm in
# build_binaries.sh): both commands build from the one dependency graph it resolves, and the
# module's own go.mod decides every dependency's version since nothing else is required.
phase "downloading github.com/prometheus/prometheus ${PROMETHEUS_VERSION}"
MOD="${WORK}/prometheus"
mkdir -p "${MOD}"
cd "${MOD}"
"${GO}" mod init continuable.dev/prometheus-build >/dev/null 2>&1
"${GO}" get "github.com/prometheus/prometheus@${PROMETHEUS_VERSION}"
phase_done "prometheus-module"

# `prometheus --version` and the build_info metric read these; without them they say "unknown".
VERSION_PKG="github.com/prometheus/common/version"
minor="${PROMETHEUS_VERSION#v0.}"; minor="${minor%%.*}"
patch="${PROMETHEUS_VERSION##*.}"
# v0.316.0 is Prometheus 3.16.0: the module's minor is 300 + the release's minor.
RELEASE="3.$(( minor - 300 )).${patch}"
ldflags="-s -w -X ${VERSION_PKG}.Version=${RELEASE} -X ${VERSION_PKG}.Revision=${PROMETHEUS_VERSION}"
ldflags+=" -X ${VERSION_PKG}.Branch=HEAD -X ${VERSION_PKG}.BuildUser=continuable"
ldflags+=" -X ${VERSION_PKG}.BuildDate=${BUILD_DATE}"

phase "compiling promtool ${RELEASE}"
"${GO}" build -trimpath -ldflags "${ldflags}" -o "${STAGE}/promtool" \
    github.com/prometheus/prometheus/cmd/promtool
phase_done "promtool"

# No -tags builtinassets: the compiled web UI is not in the module zip (it is built by npm in
# the release pipeline). Without the tag the UI is read from disk at request time and is simply
# absent; the API, /metrics and /-/ready, which is all the tests use, do not need it.
phase "compiling prometheus ${RELEASE}"
"${GO}" build -trimpath -ldflags "${ldflags}" -o "${STAGE}/prometheus" \
    github.com/prometheus/prometheus/cmd/prometheus
phase_done "prometheus"

# ---------------------------------------------------------------- finish
for name in "${BINARIES[@]}"; do
    [[ -x "${STAGE}/${name}" ]] || { echo "error: ${name} was not built" >&2; exit 1; }
done
"${STAGE}/promtool" --version >&2
"${STAGE}/prometheus" --version >&2
echo "total $(( $(date +%s) - START_TS ))s" >>"${TIMES_FILE}"
cp "${TIMES_FILE}" "${STAGE}/build-times.txt"
touch "${STAGE}/.complete"
rm -rf "${BIN_DIR}"
mv "${STAGE}" "${BIN_DIR}"
log "build times: $(tr '\n' ' ' <"${BIN_DIR}/build-times.txt")"
echo "${BIN_DIR}"
