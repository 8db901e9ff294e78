#!/usr/bin/env bash
# Installs the real node's Debian packages, only those missing: the container runtime (containerd,
# runc), the CNI plugins, the daemonless image builder (buildah: no daemon to start, and unlike
# dockerd it leaves the iptables FORWARD policy alone), debootstrap for the base image, iptables
# for kube-proxy, and gcc with a static libc for the pause binary.
set -euo pipefail
PACKAGES=(containerd runc containernetworking-plugins buildah debootstrap iptables gcc libc6-dev)
missing=()
for package in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "${package}" 2>/dev/null | grep -q "install ok installed" \
        || missing+=("${package}")
done
if [[ ${#missing[@]} -eq 0 ]]; then
    exit 0
fi
if [[ "$(id -u)" -ne 0 ]]; then
    echo "error: the real node needs these Debian packages: ${missing[*]}; install them as root" \
         "(apt-get install ${missing[*]}) or run make as root" >&2
    exit 1
fi
echo "==> installing ${missing[*]}" >&2
apt-get update -qq >&2
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
