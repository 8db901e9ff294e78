# shellcheck shell=bash
# Sourced by build_binaries.sh, build_prometheus.sh and build_kwok.sh; not run on its own.
#
# The scripts build pinned Go binaries into a cache folder outside the repo whose name carries
# the pins, and all must behave alike around the build itself: a usable prebuilt folder or a
# finished build is a no-op, two callers never build one folder at once, an interrupted build
# never leaves a folder that looks complete, progress goes to stderr and the folder is the LAST
# line of stdout. That part lives here, once, so they cannot drift apart; each script keeps
# only its pins and its build steps:
#
#     set -euo pipefail
#     source "$(dirname "${BASH_SOURCE[0]}")/building.sh"
#     BINARIES=(a b)    # what a complete folder holds
#     begin_build CONTINUABLE_X_BIN "x-${X_VERSION}" continuable-x-build
#     phase "compiling a"; "${GO}" build -o "${STAGE}/a" ...; phase_done "a"
#     finish_build "a --version" "b version"
#
# The functions run in the script's own shell (never call them in $(...)): their `exit` ends
# the script, and the lock, traps and variables they set stay in force after they return.

# Sourced first thing, so the elapsed times in the log and the total count the whole run.
START_TS=$(date +%s)
log() { echo "==> $* (+$(( $(date +%s) - START_TS ))s)" >&2; }

# Whether folder $1 holds every name in BINARIES, executable.
has_all() {
    local dir="$1" name
    for name in "${BINARIES[@]}"; do
        [[ -x "${dir}/${name}" ]] || return 1
    done
}

# .complete is written last, so its presence means a whole, finished build.
is_complete() {
    [[ -f "${BIN_DIR}/.complete" ]] && has_all "${BIN_DIR}"
}

# begin_build OVERRIDE_VAR FOLDER_NAME WORK_PREFIX
#
# Exits 0 after printing the folder to use when there is nothing to build: the folder named by
# the variable OVERRIDE_VAR when it holds all of BINARIES, else a complete
# ${XDG_CACHE_HOME:-~/.cache}/continuable/FOLDER_NAME/bin. Otherwise returns with these set:
#     GO       the Go to build with (GO=... overrides /usr/local/go/bin/go)
#     PIN_DIR  .../continuable/FOLDER_NAME, holding the lock
#     BIN_DIR  PIN_DIR/bin, the final folder
#     WORK     a scratch folder in TMPDIR named after WORK_PREFIX, removed on exit
#     STAGE    where the binaries go; finish_build moves it to BIN_DIR, any exit before removes it
# and the lock held, the traps set, and GOFLAGS / GOTOOLCHAIN exported for `go`.
begin_build() {
    local override_var="$1" folder_name="$2" work_prefix="$3"
    local override="${!override_var:-}"
    GO="${GO:-/usr/local/go/bin/go}"
    CACHE_ROOT="${XDG_CACHE_HOME:-$HOME/.cache}/continuable"
    PIN_DIR="${CACHE_ROOT}/${folder_name}"
    BIN_DIR="${PIN_DIR}/bin"

    # A prebuilt folder (CI cache, another checkout, a distribution's package) wins: nothing to
    # build. One that lacks a binary is reported and the pinned build is used instead.
    if [[ -n "${override}" ]]; then
        if has_all "${override}"; then
            echo "${override}"
            exit 0
        fi
        log "${override_var}=${override} lacks some of ${BINARIES[*]}; using ${BIN_DIR}"
    fi

    if is_complete; then
        echo "${BIN_DIR}"
        exit 0
    fi

    mkdir -p "${PIN_DIR}"
    # Two callers (make and pytest, two terminals) must not build the same folder at once. fd 9
    # stays open, so the lock is held, until the script exits.
    exec 9>"${PIN_DIR}/.lock"
    if ! flock -n 9; then
        log "another build of ${BIN_DIR} is running; waiting for it"
        flock 9
    fi
    # The build we waited for may have finished it.
    if is_complete; then
        echo "${BIN_DIR}"
        exit 0
    fi

    command -v "${GO}" >/dev/null || { echo "error: go not found at ${GO} (set GO=...)" >&2; exit 1; }
    log "building into ${BIN_DIR} with $("${GO}" version)"

    WORK="$(mktemp -d "${TMPDIR:-/tmp}/${work_prefix}.XXXXXX")"
    # Binaries land in a staging folder beside the final one; it is renamed into place only when
    # everything built, so an interrupted build never leaves a folder that looks complete.
    STAGE="$(mktemp -d "${PIN_DIR}/bin.partial.XXXXXX")"
    chmod 755 "${STAGE}"  # mktemp makes it 0700; the binaries are for every user of the machine
    trap cleanup EXIT
    # Turn Ctrl-C / SIGTERM into a normal exit so the EXIT trap removes the partial build.
    trap 'exit 130' INT
    trap 'exit 143' TERM

    # GOFLAGS may carry machine defaults (e.g. -buildvcs=false); keep them and add -mod=mod so
    # the throwaway modules may update their own go.mod/go.sum.
    export GOFLAGS="${GOFLAGS:-} -mod=mod"
    # The machine's Go, not one fetched by GOTOOLCHAIN, so the build is the same everywhere.
    export GOTOOLCHAIN="${GOTOOLCHAIN:-local}"
    TIMES_FILE="${WORK}/build-times.txt"
}

# The EXIT trap: after finish_build STAGE has been moved away and only WORK is left to remove.
cleanup() { rm -rf "${WORK}" "${STAGE}"; }

# phase MESSAGE... / phase_done NAME: log a step, then its duration, which also goes into the
# build-times.txt that finish_build leaves beside the binaries.
phase_start=0
phase() { phase_start=$(date +%s); log "$*"; }
phase_done() {
    local secs=$(( $(date +%s) - phase_start ))
    echo "$1 ${secs}s" >>"${TIMES_FILE}"
    log "$1 done in ${secs}s"
}

# finish_build ["NAME ARGS..."]...
#
# Checks every name in BINARIES was built, runs each argument's binary from STAGE with its
# (space-separated) arguments to print its version on stderr, failing the build if one does not
# run, then marks the build complete, moves it into place and prints BIN_DIR as the last line.
finish_build() {
    local name probe out
    local -a words
    for name in "${BINARIES[@]}"; do
        [[ -x "${STAGE}/${name}" ]] || { echo "error: ${name} was not built" >&2; exit 1; }
    done
    for probe in "$@"; do
        read -ra words <<<"${probe}"
        # The probe must run; its first lines are enough for the log (a --help is long).
        out=$("${STAGE}/${words[0]}" "${words[@]:1}" 2>&1) || { echo "${out}" >&2; exit 1; }
        head -n 2 <<<"${out}" >&2
    done
    echo "total $(( $(date +%s) - START_TS ))s" >>"${TIMES_FILE}"
    cp "${TIMES_FILE}" "${STAGE}/build-times.txt"
    touch "${STAGE}/.complete"
    rm -rf "${BIN_DIR}"
    mv "${STAGE}" "${BIN_DIR}"
    log "build times: $(tr '\n' ' ' <"${BIN_DIR}/build-times.txt")"
    echo "${BIN_DIR}"
}
