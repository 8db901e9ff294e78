#!/usr/bin/env bash
# Builds the pinned Kueue manager from its Go module into a cache folder outside the repo, with
# Kueue's CRDs beside it (crds/), and prints that folder as the LAST line of stdout:
#
#     bin="$(tests/cluster/build_kueue.sh | tail -1)"
#
# The Kueue e2e tests run this manager on the host against the test control plane (the
# operator's Kueue integration: one Workload per ContinuableJob). Progress goes to stderr. The
# folder name carries the pin, so changing it builds into a new folder and an unchanged pin is
# a no-op; the no-op checks, the lock and the staging are building.sh's.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=building.sh
source "$(dirname "${BASH_SOURCE[0]}")/building.sh"

KUEUE_VERSION="v0.19.2"
BINARIES=(kueue)

begin_build CONTINUABLE_KUEUE_BIN "kueue-${KUEUE_VERSION}" continuable-kueue-build

# A throwaway module that requires the pinned version: Kueue's own go.mod (no replaces) decides
# every dependency's version. Its k8s.io modules are close to the control plane's, so much of
# the Go build cache the Kubernetes build filled is reused.
phase "downloading sigs.k8s.io/kueue ${KUEUE_VERSION}"
MOD="${WORK}/kueue"
mkdir -p "${MOD}"
cd "${MOD}"
"${GO}" mod init continuable.dev/kueue-build >/dev/null 2>&1
"${GO}" get "sigs.k8s.io/kueue@${KUEUE_VERSION}"
SRC="$("${GO}" list -m -f '{{.Dir}}' "sigs.k8s.io/kueue")"
phase_done "kueue-module"

phase "compiling kueue ${KUEUE_VERSION}"
"${GO}" build -trimpath \
    -ldflags "-s -w -X sigs.k8s.io/kueue/pkg/version.GitVersion=${KUEUE_VERSION}" \
    -o "${STAGE}/kueue" sigs.k8s.io/kueue/cmd/kueue
phase_done "kueue"

# The CRDs the manager serves (v1beta2 is the storage version; no conversion webhook is needed
# while nothing asks for v1beta1).
mkdir -p "${STAGE}/crds"
cp "${SRC}"/config/components/crd/bases/*.yaml "${STAGE}/crds/"
chmod 644 "${STAGE}"/crds/*.yaml

finish_build "kueue --help"
