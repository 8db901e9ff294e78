"""What a real node changes on the host, recorded before it starts and undone at teardown.

The kubelet, kube-proxy, the CNI bridge plugin and containerd change host-wide state: sysctls,
iptables chains and rules, cgroups, mounts, network links. Each `Snapshot` records the state as
it was, so teardown removes exactly what appeared since and restores what changed, even from
another process (`cluster down`) or after a crash (the snapshot is saved as JSON first).
"""

from __future__ import annotations

import os
import shlex
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# The ones the kubelet (protectKernelDefaults: false), kube-proxy and the bridge plugin
# (isGateway) are known to set; restored when they differ at teardown.
SYSCTLS: tuple[str, ...] = (
    "vm.overcommit_memory",
    "vm.panic_on_oom",
    "kernel.panic",
    "kernel.panic_on_oops",
    "kernel.keys.root_maxkeys",
    "kernel.keys.root_maxbytes",
    "net.ipv4.ip_forward",
    "net.ipv4.conf.all.route_localnet",
)
TABLES: tuple[str, ...] = ("filter", "nat", "mangle", "raw")
BUILTIN_CHAINS = frozenset(
    {"INPUT", "OUTPUT", "FORWARD", "PREROUTING", "POSTROUTING"},
)
CGROUP_ROOT = Path("/sys/fs/cgroup")
# containerd pins each pod sandbox's network namespace here (cni-<uuid>); the kubelet's pod
# deletion removes it, a crash may not.
NETNS_DIR = Path("/var/run/netns")
# The kubelet's cgroupfs hierarchy under cgroupRoot "/" (pods, QoS classes, containers).
KUBELET_CGROUP = "kubepods"


class HostStateError(RuntimeError):
    pass


def _sysctl_path(name: str) -> Path:
    return Path("/proc/sys") / name.replace(".", "/")


def read_sysctls(names: Iterable[str] = SYSCTLS) -> dict[str, str]:
    values = {}
    for name in names:
        try:
            values[name] = _sysctl_path(name).read_text().strip()
        except OSError:
            continue  # not on this kernel: nothing to restore
    return values


def restore_sysctls(saved: Mapping[str, str]) -> list[str]:
    """Write back every saved value that changed; returns the names restored."""
    restored = []
    for name, value in read_sysctls(saved).items():
        if value != saved[name]:
            _sysctl_path(name).write_text(saved[name] + "\n")
            restored.append(name)
    return restored


def _run(argv: Sequence[str], *, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    if check and result.returncode != 0:
        raise HostStateError(f"{' '.join(argv)}: {result.stderr.strip() or result.stdout.strip()}")
    return result


def saved_chains(save_text: str) -> dict[str, list[str]]:
    """Chain names per table in `iptables-save` output (a table never used is absent: empty)."""
    chains: dict[str, list[str]] = {table: [] for table in TABLES}
    table = ""
    for line in save_text.splitlines():
        if line.startswith("*"):
            table = line[1:]
        elif line.startswith(":") and table in chains:
            chains[table].append(line[1:].split()[0])
    return chains


@dataclass(frozen=True)
class ChainRemoval:
    """What to undo in iptables: the rules (table, spec) that jump from an older chain into a
    new one, then the new chains (table, name), each flushed before any is deleted."""

    jumps: list[tuple[str, list[str]]]
    chains: list[tuple[str, str]]


def chain_removal(save_text: str, before: Mapping[str, Sequence[str]]) -> ChainRemoval:
    """Every chain in `save_text` that was not there `before`, and the rules that reach it.

    Rules are kept as their spec from `iptables-save`, so `-D` deletes exactly them and the
    rules that were there before in the same chains stay.
    """
    now = saved_chains(save_text)
    new = {
        table: {c for c in chains if c not in before.get(table, ()) and c not in BUILTIN_CHAINS}
        for table, chains in now.items()
    }
    jumps: list[tuple[str, list[str]]] = []
    table = ""
    for line in save_text.splitlines():
        if line.startswith("*"):
            table = line[1:]
        elif line.startswith("-A ") and table in new:
            words = shlex.split(line)
            target = words[words.index("-j") + 1] if "-j" in words else ""
            if words[1] not in new[table] and target in new[table]:
                jumps.append((table, words[1:]))
    chains = [(table, chain) for table in TABLES for chain in sorted(new[table])]
    return ChainRemoval(jumps, chains)


def iptables_chains(binary: str = "iptables") -> dict[str, list[str]]:
    return saved_chains(_run([f"{binary}-save"]).stdout)


def remove_new_chains(before: Mapping[str, Sequence[str]], binary: str = "iptables") -> list[str]:
    """Delete every chain that was not there `before`; returns "table/chain" for each."""
    plan = chain_removal(_run([f"{binary}-save"]).stdout, before)
    for table, spec in plan.jumps:
        _run([binary, "-w", "-t", table, "-D", *spec])
    for table, chain in plan.chains:
        _run([binary, "-w", "-t", table, "-F", chain])
    for table, chain in plan.chains:
        _run([binary, "-w", "-t", table, "-X", chain])
    return [f"{table}/{chain}" for table, chain in plan.chains]


def mount_points_under(mountinfo: str, folder: str) -> list[str]:
    """Mount points at or below `folder` in /proc/self/mountinfo's text, deepest first (the
    order to unmount them in)."""
    points = set()
    for line in mountinfo.splitlines():
        # Field 5 is the mount point, with spaces and the like escaped as \ooo.
        point = line.split()[4].encode().decode("unicode_escape")
        if point == folder or point.startswith(folder.rstrip("/") + "/"):
            points.add(point)
    return sorted(points, key=lambda p: (p.count("/"), p), reverse=True)


def mounts_under(folder: Path) -> list[Path]:
    mountinfo = Path("/proc/self/mountinfo").read_text()
    return [Path(p) for p in mount_points_under(mountinfo, str(folder.resolve()))]


def unmount_under(folder: Path) -> list[Path]:
    unmounted = []
    # Bounded: a mount may hide another at the same point; each round takes one layer off.
    for _ in range(5):
        points = mounts_under(folder)
        if not points:
            break
        for point in points:
            if _run(["umount", "--lazy", str(point)], check=False).returncode == 0:
                unmounted.append(point)
    return unmounted


def kubelet_cgroups() -> list[Path]:
    """The kubelet's `kubepods` folder in each cgroup v1 hierarchy (or the v2 root)."""
    found = []
    for hierarchy in [CGROUP_ROOT, *sorted(p for p in CGROUP_ROOT.iterdir() if p.is_dir())]:
        candidate = hierarchy / KUBELET_CGROUP
        if candidate.is_dir():
            found.append(candidate)
    return found


def network_namespaces() -> list[str]:
    return sorted(p.name for p in NETNS_DIR.iterdir()) if NETNS_DIR.is_dir() else []


def remove_network_namespaces(names: Iterable[str]) -> list[str]:
    left = []
    for name in names:
        result = _run(["ip", "netns", "delete", name], check=False)
        if result.returncode != 0:
            left.append(f"network namespace {name}: {result.stderr.strip()}")
    return left


def remove_cgroups(roots: Iterable[Path]) -> list[str]:
    """rmdir each tree bottom-up; returns the folders that could not go (a process still in)."""
    left = []
    for root in roots:
        for dirpath, _, _ in sorted(os.walk(root), key=lambda w: len(w[0]), reverse=True):
            try:
                os.rmdir(dirpath)
            except OSError as err:
                left.append(f"{dirpath}: {err.strerror}")
    return left


@dataclass
class Snapshot:
    sysctls: dict[str, str] = field(default_factory=dict)
    iptables: dict[str, list[str]] = field(default_factory=dict)
    ip6tables: dict[str, list[str]] = field(default_factory=dict)
    # Whether the kubelet's cgroup tree was already there (then it is not ours to remove).
    kubelet_cgroups_existed: bool = False
    netns: list[str] = field(default_factory=list)

    @classmethod
    def take(cls) -> Snapshot:
        return cls(
            sysctls=read_sysctls(),
            iptables=iptables_chains("iptables"),
            ip6tables=iptables_chains("ip6tables"),
            kubelet_cgroups_existed=bool(kubelet_cgroups()),
            netns=network_namespaces(),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "sysctls": self.sysctls,
            "iptables": self.iptables,
            "ip6tables": self.ip6tables,
            "kubelet_cgroups_existed": self.kubelet_cgroups_existed,
            "netns": self.netns,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Snapshot:
        return cls(
            sysctls=dict(data["sysctls"]),
            iptables={k: list(v) for k, v in data["iptables"].items()},
            ip6tables={k: list(v) for k, v in data["ip6tables"].items()},
            kubelet_cgroups_existed=bool(data["kubelet_cgroups_existed"]),
            netns=list(data.get("netns", [])),
        )

    def restore(self) -> list[str]:
        """Undo what changed since the snapshot; returns what could not be undone."""
        problems: list[str] = []
        for binary, before in (("iptables", self.iptables), ("ip6tables", self.ip6tables)):
            try:
                remove_new_chains(before, binary)
            except HostStateError as err:
                problems.append(str(err))
        problems += remove_network_namespaces(
            name for name in network_namespaces() if name not in self.netns
        )
        if not self.kubelet_cgroups_existed:
            problems += remove_cgroups(kubelet_cgroups())
        restore_sysctls(self.sysctls)
        return problems
