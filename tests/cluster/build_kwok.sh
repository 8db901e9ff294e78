#!/usr/bin/env bash
# Builds the pinned kwok (Kubernetes WithOut Kubelet) from its Go module into a cache folder
# outside the repo, and prints that folder as the LAST line of stdout:
#
#     bin="$(tests/cluster/build_kwok.sh | tail -1)"
#
# kwok fakes nodes and the pods bound to them (`make bench-scale` runs a thousand pods that
# only need to exist and be Running). Progress goes to stderr. The folder name carries the pin,
# so changing it builds into a new folder and an unchanged pin is a no-op; the no-op checks,
# the lock and the staging are building.sh's, shared with the other builds.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=building.sh
source "$(dirname "${BASH_SOURCE[0]}")/building.sh"

KWOK_VERSION="v0.8.0"
BINARIES=(kwok)

begin_build CONTINUABLE_KWOK_BIN "kwok-${KWOK_VERSION}" continuable-kwok-build

# A throwaway module that requires the pinned version, as for Prometheus: the module's own
# go.mod decides every dependency's version.
phase "downloading sigs.k8s.io/kwok ${KWOK_VERSION}"
MOD="${WORK}/kwok"
mkdir -p "${MOD}"
cd "${MOD}"
"${GO}" mod init continuable.dev/kwok-build >/dev/null 2>&1
"${GO}" get "sigs.k8s.io/kwok@${KWOK_VERSION}"
phase_done "kwok-module"

phase "compiling kwok ${KWOK_VERSION}"
"${GO}" build -trimpath -ldflags "-s -w -X sigs.k8s.io/kwok/pkg/consts.Version=${KWOK_VERSION}" \
    -o "${STAGE}/" sigs.k8s.io/kwok/cmd/kwok
phase_done "kwok"

finish_build "kwok --version"
