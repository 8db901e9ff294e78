#!/usr/bin/env bash
# Builds the real node's images with no registry and no daemon, into a cache folder outside the
# repo, and prints the manifest that names them (images.json) as the LAST line of stdout:
#
#     manifest="$(tests/cluster/realnode/build_images.sh | tail -1)"
#
#   localhost/python:3.11-bookworm        a debootstrap --variant=minbase root filesystem with
#                                         python3, python3-venv and python-is-python3
#   localhost/continuable-operator:<key>  the repository's Dockerfile, built on that base
#   localhost/continuable-job:<key>       the SDK in a venv, examples/ and the real-node tests' jobs
#   localhost/pause:<k8s version>         pause.c from the pinned k8s.io/kubernetes module
#
# Each image is a docker-archive tar named after a key of its inputs (the files it is built from,
# its parent's key, this script), so an unchanged input is a no-op and a changed one builds a new
# tar beside the old; of each image the newest KEEP archives stay (another checkout may still
# be using an older key), the rest are removed. buildah keeps its storage in a scratch folder removed on exit: nothing is
# left in /var/lib/containers. Progress goes to stderr.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=../building.sh
source "$(dirname "${BASH_SOURCE[0]}")/../building.sh"

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)"
SCRIPT="${BASH_SOURCE[0]}"
K8S_VERSION="v1.36.3"           # must match build_binaries.sh: pause.c comes from that module
SUITE="bookworm"
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
BASE_PACKAGES="python3,python3-venv,python-is-python3,ca-certificates"
BASE_NAME="localhost/python:3.11-bookworm"
GO="${GO:-/usr/local/go/bin/go}"
CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/continuable/images"
mkdir -p "${CACHE}"
KEEP=3
TIMES_FILE=/dev/null  # building.sh's phase_done also records durations; here the log says them

# One build at a time: two callers (make and pytest) wait for each other instead of racing.
exec 9>"${CACHE}/.lock"
flock -n 9 || { log "another image build is running; waiting for it"; flock 9; }

# key WORDS... : a short digest of the words and of every file under the paths among them.
key() {
    {
        printf '%s\n' "$@"
        sha256sum <"${SCRIPT}"
        local path
        for path in "$@"; do
            [[ -e "${REPO}/${path}" ]] || continue
            (cd "${REPO}" && find "${path}" -type f ! -path '*/__pycache__/*' ! -name '*.py[cod]' \
                -print0 | sort -z | xargs -0r sha256sum)
        done
    } | sha256sum | cut -c1-16
}

SCRATCH=""
cleanup() {
    # buildah's vfs storage has no mounts; its files are owned by root and removed as root.
    [[ -n "${SCRATCH}" ]] && rm -rf "${SCRATCH}"
    return 0
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

scratch() {
    if [[ -z "${SCRATCH}" ]]; then
        SCRATCH="$(mktemp -d "${TMPDIR:-/tmp}/continuable-images.XXXXXX")"
    fi
}

buildah_() {
    buildah --root "${SCRATCH}/storage" --runroot "${SCRATCH}/run" --storage-driver vfs "$@"
}

# have ARCHIVE: whether a finished archive is there (.tmp files are unfinished ones).
have() { [[ -s "$1" ]]; }

# load ARCHIVE: make an archived image available to `FROM` in this run's storage.
load() { buildah_ pull --quiet "docker-archive:$1" >/dev/null; }

# save IMAGE ARCHIVE: write the image as a docker archive, atomically.
save() {
    rm -f "$2.tmp"
    buildah_ push --quiet "$1" "docker-archive:$2.tmp:$1" >/dev/null
    mv "$2.tmp" "$2"
}

# The host's CA bundle, lent to pip inside a build only: the package index may be reached
# through a TLS-intercepting proxy whose CA only the host trusts. It never enters an image.
CA_VOLUME=(-v /etc/ssl/certs:/etc/ssl/certs:ro)

# ---------------------------------------------------------------- base
BASE_KEY="$(key "${SUITE}" "${BASE_PACKAGES}")"
BASE_ARCHIVE="${CACHE}/python-3.11-${SUITE}-${BASE_KEY}.tar"
if ! have "${BASE_ARCHIVE}"; then
    scratch
    phase "debootstrap ${SUITE} (minbase + ${BASE_PACKAGES})"
    rootfs="${SCRATCH}/rootfs"
    debootstrap --variant=minbase --include="${BASE_PACKAGES}" "${SUITE}" "${rootfs}" "${MIRROR}" \
        >"${SCRATCH}/debootstrap.log" 2>&1 || { tail -20 "${SCRATCH}/debootstrap.log" >&2; exit 1; }
    # Package lists and caches are of no use in an image.
    rm -rf "${rootfs}"/var/lib/apt/lists/* "${rootfs}"/var/cache/apt/*.bin \
        "${rootfs}"/var/cache/apt/archives/*.deb
    ctr="$(buildah_ from scratch)"
    buildah_ add --quiet "${ctr}" "${rootfs}" / >/dev/null
    buildah_ config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
        --env LANG=C.UTF-8 --cmd python3 "${ctr}"
    buildah_ commit --quiet "${ctr}" "${BASE_NAME}" >/dev/null
    save "${BASE_NAME}" "${BASE_ARCHIVE}"
    rm -rf "${rootfs}"
    phase_done "base"
fi

# ---------------------------------------------------------------- operator (the Dockerfile)
OPERATOR_KEY="$(key "${BASE_KEY}" Dockerfile .dockerignore pyproject.toml README.md sdk operator)"
OPERATOR_NAME="localhost/continuable-operator:${OPERATOR_KEY}"
OPERATOR_ARCHIVE="${CACHE}/continuable-operator-${OPERATOR_KEY}.tar"
if ! have "${OPERATOR_ARCHIVE}"; then
    scratch
    phase "operator image from Dockerfile on ${BASE_NAME}"
    load "${BASE_ARCHIVE}"
    buildah_ bud --quiet --isolation chroot --network host --pull=never "${CA_VOLUME[@]}" \
        --build-arg "PYTHON_IMAGE=${BASE_NAME}" -f "${REPO}/Dockerfile" -t "${OPERATOR_NAME}" \
        "${REPO}" >/dev/null
    save "${OPERATOR_NAME}" "${OPERATOR_ARCHIVE}"
    phase_done "operator"
fi

# ---------------------------------------------------------------- job
JOB_INPUTS=(pyproject.toml README.md sdk operator examples tests/e2e/realnode/jobs tests/e2e/sdk/jobs)
JOB_KEY="$(key "${BASE_KEY}" "${JOB_INPUTS[@]}" tests/cluster/realnode/job.Containerfile)"
JOB_NAME="localhost/continuable-job:${JOB_KEY}"
JOB_ARCHIVE="${CACHE}/continuable-job-${JOB_KEY}.tar"
if ! have "${JOB_ARCHIVE}"; then
    scratch
    phase "job image on ${BASE_NAME}"
    load "${BASE_ARCHIVE}"
    # A context of its own: the repository's .dockerignore is the operator image's.
    context="${SCRATCH}/job-context"
    mkdir -p "${context}"
    (cd "${REPO}" && cp -r --parents "${JOB_INPUTS[@]}" "${context}/")
    find "${context}" -name __pycache__ -type d -prune -exec rm -rf {} +
    buildah_ bud --quiet --isolation chroot --network host --pull=never "${CA_VOLUME[@]}" \
        --build-arg "PYTHON_IMAGE=${BASE_NAME}" \
        -f "${REPO}/tests/cluster/realnode/job.Containerfile" -t "${JOB_NAME}" "${context}" \
        >/dev/null
    save "${JOB_NAME}" "${JOB_ARCHIVE}"
    phase_done "job"
fi

# ---------------------------------------------------------------- pause
PAUSE_NAME="localhost/pause:${K8S_VERSION}"
PAUSE_ARCHIVE="${CACHE}/pause-${K8S_VERSION}-$(key "${K8S_VERSION}").tar"
if ! have "${PAUSE_ARCHIVE}"; then
    scratch
    phase "pause image from k8s.io/kubernetes@${K8S_VERSION}'s pause.c"
    module_dir="$(GOFLAGS=-mod=mod GOTOOLCHAIN=local "${GO}" mod download -json \
        "k8s.io/kubernetes@${K8S_VERSION}" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p')"
    mkdir -p "${SCRATCH}/pause"
    gcc -Os -static -DVERSION="${K8S_VERSION}" -o "${SCRATCH}/pause/pause" \
        "${module_dir}/build/pause/linux/pause.c"
    strip "${SCRATCH}/pause/pause"
    ctr="$(buildah_ from scratch)"
    buildah_ add --quiet "${ctr}" "${SCRATCH}/pause/pause" /pause >/dev/null
    buildah_ config --entrypoint '["/pause"]' --user 65535:65535 "${ctr}"
    buildah_ commit --quiet "${ctr}" "${PAUSE_NAME}" >/dev/null
    save "${PAUSE_NAME}" "${PAUSE_ARCHIVE}"
    phase_done "pause"
fi

# ---------------------------------------------------------------- manifest
MANIFEST="${CACHE}/images.json"
cat >"${MANIFEST}.tmp" <<EOF
{
  "base": {"name": "${BASE_NAME}", "archive": "${BASE_ARCHIVE}"},
  "operator": {"name": "${OPERATOR_NAME}", "archive": "${OPERATOR_ARCHIVE}"},
  "job": {"name": "${JOB_NAME}", "archive": "${JOB_ARCHIVE}"},
  "pause": {"name": "${PAUSE_NAME}", "archive": "${PAUSE_ARCHIVE}"}
}
EOF
mv "${MANIFEST}.tmp" "${MANIFEST}"

# Each archive is a few hundred MB and every change to sdk/ or operator/ makes new ones. The
# ones just used count as the newest.
touch "${BASE_ARCHIVE}" "${OPERATOR_ARCHIVE}" "${JOB_ARCHIVE}" "${PAUSE_ARCHIVE}"
for family in python-3.11-${SUITE} continuable-operator continuable-job pause-${K8S_VERSION}; do
    find "${CACHE}" -maxdepth 1 -name "${family}-*.tar" -printf '%T@ %p\n' | sort -rn \
        | tail -n +$((KEEP + 1)) | cut -d' ' -f2- | xargs -r rm -f
done
echo "${MANIFEST}"
