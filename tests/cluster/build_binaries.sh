#!/usr/bin/env bash
# Builds the pinned Kubernetes binaries (kube-apiserver, kube-controller-manager,
# kube-scheduler, kubectl, kubelet, kube-proxy, etcd, helm) from their Go modules into a cache
# folder outside the repo, and prints that folder as the LAST line of stdout:
#
#     bin="$(tests/cluster/build_binaries.sh | tail -1)"
#
# Progress goes to stderr so it stays visible while stdout is captured.
# The pins must match tests/cluster/binaries.py (PINS); the folder name carries them, so
# changing a pin builds into a new folder and an unchanged pin is a no-op.
# What is common to build_prometheus.sh (the no-op checks, the lock, the staging folder, the
# final move into place) is in building.sh; this script keeps its pins and its build steps.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=building.sh
source "$(dirname "${BASH_SOURCE[0]}")/building.sh"

K8S_VERSION="v1.36.3"
ETCD_VERSION="v3.5.21"
HELM_VERSION="v4.3.1"
BINARIES=(kube-apiserver kube-controller-manager kube-scheduler kubectl kubelet kube-proxy etcd helm)

# Exits at once with the folder when it is already built; otherwise holds the lock and sets
# GO, WORK, STAGE and BIN_DIR (see building.sh).
begin_build CONTINUABLE_K8S_BIN "k8s-${K8S_VERSION}-etcd-${ETCD_VERSION}-helm-${HELM_VERSION}" \
    continuable-k8s-build
BUILD_DATE="$(date -u +%Y-%m-%dT%H:%M:%SZ)"

# ---------------------------------------------------------------- Kubernetes
# k8s.io/kubernetes is not meant to be a dependency: its go.mod points every k8s.io/* staging
# module at ./staging/src/..., which does not exist in the module zip. Mapping each of those to
# the published k8s.io/<name> v0.<minor>.<patch> makes it buildable from the proxy.
phase "downloading k8s.io/kubernetes ${K8S_VERSION} and its modules"
K8S_MOD="${WORK}/k8s"
mkdir -p "${K8S_MOD}"
cd "${K8S_MOD}"
"${GO}" mod init continuable.dev/k8s-build >/dev/null 2>&1
K8S_GOMOD="$("${GO}" mod download -json "k8s.io/kubernetes@${K8S_VERSION}" \
    | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",\{0,1\}$/\1/p')"
[[ -f "${K8S_GOMOD}" ]] || { echo "error: no go.mod downloaded for k8s.io/kubernetes@${K8S_VERSION}" >&2; exit 1; }
STAGING_VERSION="v0.${K8S_VERSION#v1.}"
replaces=()
while read -r mod; do
    replaces+=("-replace=${mod}=${mod}@${STAGING_VERSION}")
done < <(sed -n 's#^[[:space:]]*\(k8s\.io/[^[:space:]]*\)[[:space:]]*=>[[:space:]]*\./staging/src/.*#\1#p' "${K8S_GOMOD}" | sort -u)
[[ ${#replaces[@]} -gt 0 ]] || { echo "error: no staging replaces found in ${K8S_GOMOD}" >&2; exit 1; }
log "mapping ${#replaces[@]} staging modules to ${STAGING_VERSION}"
"${GO}" mod edit "${replaces[@]}" -require="k8s.io/kubernetes@${K8S_VERSION}"
# kubelet and kube-proxy run the real node (`make cluster-up REALNODE=1`); built in the same
# `go build` as the control plane, they share most of its compiled packages.
K8S_CMDS=(kube-apiserver kube-controller-manager kube-scheduler kubectl kubelet kube-proxy)
{
    echo "//go:build tools"
    echo
    echo "package tools"
    echo
    echo "import ("
    for c in "${K8S_CMDS[@]}"; do echo "	_ \"k8s.io/kubernetes/cmd/${c}\""; done
    echo ")"
} >tools.go
"${GO}" mod tidy
phase_done "k8s-modules"

phase "building ${K8S_CMDS[*]} ${K8S_VERSION}"
minor="${K8S_VERSION#v1.}"; minor="${minor%%.*}"
ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags+=" -X ${pkg}.gitVersion=${K8S_VERSION} -X ${pkg}.gitMajor=1 -X ${pkg}.gitMinor=${minor}"
    ldflags+=" -X ${pkg}.gitTreeState=clean -X ${pkg}.buildDate=${BUILD_DATE}"
done
pkgs=()
for c in "${K8S_CMDS[@]}"; do pkgs+=("k8s.io/kubernetes/cmd/${c}"); done
"${GO}" build -trimpath -ldflags "${ldflags}" -o "${STAGE}/" "${pkgs[@]}"
phase_done "k8s-binaries"

# ---------------------------------------------------------------- etcd
# `go install ...@version` is refused because etcd's go.mod has replace directives; a
# throwaway module that requires it builds fine.
phase "building etcd ${ETCD_VERSION}"
ETCD_MOD="${WORK}/etcd"
mkdir -p "${ETCD_MOD}"
cd "${ETCD_MOD}"
"${GO}" mod init continuable.dev/etcd-build >/dev/null 2>&1
"${GO}" get "go.etcd.io/etcd/server/v3@${ETCD_VERSION}"
phase_done "etcd-modules"
phase "compiling etcd"
"${GO}" build -trimpath -ldflags "-s -w" -o "${STAGE}/etcd" go.etcd.io/etcd/server/v3
phase_done "etcd-binary"

# ---------------------------------------------------------------- helm
phase "building helm ${HELM_VERSION}"
HELM_MOD="${WORK}/helm"
mkdir -p "${HELM_MOD}"
cd "${HELM_MOD}"
"${GO}" mod init continuable.dev/helm-build >/dev/null 2>&1
"${GO}" get "helm.sh/helm/v4@${HELM_VERSION}"
phase_done "helm-modules"
phase "compiling helm"
"${GO}" build -trimpath -ldflags "-s -w -X helm.sh/helm/v4/internal/version.version=${HELM_VERSION}" \
    -o "${STAGE}/helm" helm.sh/helm/v4/cmd/helm
phase_done "helm-binary"

# ---------------------------------------------------------------- finish
finish_build "kubectl version --client" "etcd --version" "helm version"
