#!/usr/bin/env bash
# Builds the pinned control-plane binaries (kube-apiserver, kube-controller-manager,
# kube-scheduler, kubectl, etcd, helm) from their Go modules into a cache folder outside the
# repo, and prints that folder as the LAST line of stdout:
#
#     bin="$(tests/cluster/build_binaries.sh | tail -1)"
#
# Progress goes to stderr so it stays visible while stdout is captured.
# The pins must match tests/cluster/binaries.py (PINS); the folder name carries them, so
# changing a pin builds into a new folder and an unchanged pin is a no-op.
set -euo pipefail

K8S_VERSION="v1.36.3"
ETCD_VERSION="v3.5.21"
HELM_VERSION="v4.3.1"
BINARIES=(kube-apiserver kube-controller-manager kube-scheduler kubectl etcd helm)

GO="${GO:-/usr/local/go/bin/go}"
CACHE_ROOT="${XDG_CACHE_HOME:-$HOME/.cache}/continuable"
PIN_DIR="${CACHE_ROOT}/k8s-${K8S_VERSION}-etcd-${ETCD_VERSION}-helm-${HELM_VERSION}"
BIN_DIR="${PIN_DIR}/bin"

START_TS=$(date +%s)
log() { echo "==> $* (+$(( $(date +%s) - START_TS ))s)" >&2; }

has_all() {
    local dir="$1" name
    for name in "${BINARIES[@]}"; do
        [[ -x "${dir}/${name}" ]] || return 1
    done
}

# A prebuilt folder (CI cache, another checkout) wins: nothing to build.
if [[ -n "${CONTINUABLE_K8S_BIN:-}" ]]; then
    if has_all "${CONTINUABLE_K8S_BIN}"; then
        echo "${CONTINUABLE_K8S_BIN}"
        exit 0
    fi
    log "CONTINUABLE_K8S_BIN=${CONTINUABLE_K8S_BIN} lacks some of ${BINARIES[*]}; using ${BIN_DIR}"
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

WORK="$(mktemp -d "${TMPDIR:-/tmp}/continuable-k8s-build.XXXXXX")"
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
# throwaway modules may update their own go.mod/go.sum.
export GOFLAGS="${GOFLAGS:-} -mod=mod"
# The machine's Go, not one fetched by GOTOOLCHAIN, so the build is the same everywhere.
export GOTOOLCHAIN="${GOTOOLCHAIN:-local}"
BUILD_DATE="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
TIMES_FILE="${WORK}/build-times.txt"
phase_start=0
phase() { phase_start=$(date +%s); log "$*"; }
phase_done() {
    local secs=$(( $(date +%s) - phase_start ))
    echo "$1 ${secs}s" >>"${TIMES_FILE}"
    log "$1 done in ${secs}s"
}

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
K8S_CMDS=(kube-apiserver kube-controller-manager kube-scheduler kubectl)
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
for name in "${BINARIES[@]}"; do
    [[ -x "${STAGE}/${name}" ]] || { echo "error: ${name} was not built" >&2; exit 1; }
done
"${STAGE}/kubectl" version --client >&2
"${STAGE}/etcd" --version >&2
"${STAGE}/helm" version >&2
echo "total $(( $(date +%s) - START_TS ))s" >>"${TIMES_FILE}"
cp "${TIMES_FILE}" "${STAGE}/build-times.txt"
touch "${STAGE}/.complete"
rm -rf "${BIN_DIR}"
mv "${STAGE}" "${BIN_DIR}"
log "build times: $(tr '\n' ' ' <"${BIN_DIR}/build-times.txt")"
echo "${BIN_DIR}"
