#!/usr/bin/env bash
# Builds the pinned Prometheus server and promtool from their Go module into a cache folder
# outside the repo, and prints that folder as the LAST line of stdout:
#
#     bin="$(tests/cluster/build_prometheus.sh | tail -1)"
#
# Progress goes to stderr so it stays visible while stdout is captured.
# The pin must match tests/cluster/prometheus.py (PROMETHEUS_VERSION); the folder name carries
# it, so changing the pin builds into a new folder and an unchanged pin is a no-op.
# What is common to build_binaries.sh (the no-op checks, the lock, the staging folder, the
# final move into place) is in building.sh; this script keeps its pin and its build steps.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=building.sh
source "$(dirname "${BASH_SOURCE[0]}")/building.sh"

# The Go module's v0.<minor>.<patch> tags are Prometheus 3.<minor>.<patch> releases.
PROMETHEUS_VERSION="v0.316.0"
BINARIES=(promtool prometheus)

# Exits at once with the folder when it is already built; otherwise holds the lock and sets
# GO, WORK, STAGE and BIN_DIR (see building.sh).
begin_build CONTINUABLE_PROMETHEUS_BIN "prometheus-${PROMETHEUS_VERSION}" \
    continuable-prometheus-build
BUILD_DATE="$(date -u +%Y%m%d-%H:%M:%S)"

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

# No -tags builtinassets: the compiled web UI is not in the module zip (it is built by npm in
# the release pipeline). Without the tag the UI is read from disk at request time and is simply
# absent; the API, /metrics and /-/ready, which is all the tests use, do not need it.
# -tags remove_all_sd: the tests scrape static targets only, so the service-discovery plugins
# and the cloud SDKs they pull in (AWS, Azure, GCE, Kubernetes, ...) are not compiled at all.
# Both commands in one `go build`, so the packages they share are compiled once.
phase "compiling promtool and prometheus ${RELEASE}"
"${GO}" build -trimpath -tags remove_all_sd -ldflags "${ldflags}" -o "${STAGE}/" \
    github.com/prometheus/prometheus/cmd/promtool github.com/prometheus/prometheus/cmd/prometheus
phase_done "prometheus"

# ---------------------------------------------------------------- finish
finish_build "promtool --version" "prometheus --version"
