"""The real node's host-only pod network: a bridge and the rules that keep it inside the machine.

The bridge exists before the kubelet, the relay and kube-proxy start, because they bind its
address. Two rule sets sit where kube-proxy's own rules (which it inserts at the top of the
filter and nat chains) cannot get above them:
- mangle FORWARD: nothing is forwarded between the bridge and any other interface (a pod has no
  default route anyway; this holds even if one adds a route by hand);
- raw PREROUTING: the pod network's addresses are reached only from the bridge itself or from
  this host (loopback), never from another interface.
"""

from __future__ import annotations

import subprocess
from collections.abc import Sequence

from .configs import BRIDGE, BRIDGE_ADDRESS, POD_SUBNET, bridge_prefix

ISOLATE_CHAIN = "CONTINUABLE-ISOLATE"
GUARD_CHAIN = "CONTINUABLE-GUARD"


class NetworkError(RuntimeError):
    pass


def _run(argv: Sequence[str], *, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    if check and result.returncode != 0:
        raise NetworkError(f"{' '.join(argv)}: {result.stderr.strip()}")
    return result


def bridge_exists() -> bool:
    return _run(["ip", "link", "show", BRIDGE], check=False).returncode == 0


def create_bridge() -> None:
    if bridge_exists():
        raise NetworkError(
            f"the bridge {BRIDGE} already exists: another real node is up on this machine "
            "(`make cluster-down`), or a crashed one left it (`ip link del " + BRIDGE + "`)"
        )
    _run(["ip", "link", "add", BRIDGE, "type", "bridge"])
    _run(["ip", "addr", "add", f"{BRIDGE_ADDRESS}/{bridge_prefix()}", "dev", BRIDGE])
    _run(["ip", "link", "set", BRIDGE, "up"])


def delete_bridge() -> None:
    if bridge_exists():
        _run(["ip", "link", "del", BRIDGE])


def isolate() -> None:
    """Add the two chains (teardown removes them with every other chain that is new)."""
    iptables = ["iptables", "-w"]
    _run([*iptables, "-t", "mangle", "-N", ISOLATE_CHAIN])
    _run(
        [
            *iptables,
            "-t",
            "mangle",
            "-A",
            ISOLATE_CHAIN,
            "-i",
            BRIDGE,
            "!",
            "-o",
            BRIDGE,
            "-j",
            "DROP",
        ]
    )
    _run(
        [
            *iptables,
            "-t",
            "mangle",
            "-A",
            ISOLATE_CHAIN,
            "!",
            "-i",
            BRIDGE,
            "-o",
            BRIDGE,
            "-j",
            "DROP",
        ]
    )
    _run([*iptables, "-t", "mangle", "-I", "FORWARD", "1", "-j", ISOLATE_CHAIN])
    _run([*iptables, "-t", "raw", "-N", GUARD_CHAIN])
    _run([*iptables, "-t", "raw", "-A", GUARD_CHAIN, "-i", "lo", "-j", "RETURN"])
    _run([*iptables, "-t", "raw", "-A", GUARD_CHAIN, "-i", BRIDGE, "-j", "RETURN"])
    _run([*iptables, "-t", "raw", "-A", GUARD_CHAIN, "-d", POD_SUBNET, "-j", "DROP"])
    _run([*iptables, "-t", "raw", "-I", "PREROUTING", "1", "-j", GUARD_CHAIN])
