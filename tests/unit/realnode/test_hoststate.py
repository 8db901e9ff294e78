"""What teardown undoes on the host, decided from `iptables-save` and mountinfo text."""

from __future__ import annotations

from tests.cluster.realnode.hoststate import chain_removal, mount_points_under, saved_chains

BEFORE = """\
*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:DOCKER-USER - [0:0]
-A FORWARD -j DOCKER-USER
COMMIT
"""

AFTER = """\
*mangle
:PREROUTING ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:CONTINUABLE-ISOLATE - [0:0]
-A FORWARD -j CONTINUABLE-ISOLATE
-A CONTINUABLE-ISOLATE -i cjbr0 ! -o cjbr0 -j DROP
COMMIT
*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:DOCKER-USER - [0:0]
:KUBE-FORWARD - [0:0]
:KUBE-SERVICES - [0:0]
-A FORWARD -m comment --comment "kubernetes forwarding rules" -j KUBE-FORWARD
-A FORWARD -j DOCKER-USER
-A OUTPUT -m conntrack --ctstate NEW -m comment --comment "service portals" -j KUBE-SERVICES
-A KUBE-FORWARD -m conntrack --ctstate INVALID -j DROP
-A KUBE-SERVICES -j KUBE-FORWARD
COMMIT
"""


def test_saved_chains_lists_each_tables_chains() -> None:
    chains = saved_chains(BEFORE)
    assert chains["filter"] == ["INPUT", "FORWARD", "OUTPUT", "DOCKER-USER"]
    assert chains["nat"] == []


def test_only_new_chains_and_the_rules_into_them_from_older_chains_go() -> None:
    plan = chain_removal(AFTER, saved_chains(BEFORE))
    assert plan.chains == [
        ("filter", "KUBE-FORWARD"),
        ("filter", "KUBE-SERVICES"),
        ("mangle", "CONTINUABLE-ISOLATE"),
    ]
    # Quoted comments come back as one word, so `-D` gets the rule exactly as it was added;
    # the jump between two new chains goes with them, DOCKER-USER's rule stays.
    assert plan.jumps == [
        ("mangle", ["FORWARD", "-j", "CONTINUABLE-ISOLATE"]),
        (
            "filter",
            ["FORWARD", "-m", "comment", "--comment", "kubernetes forwarding rules", "-j",
             "KUBE-FORWARD"],
        ),
        (
            "filter",
            ["OUTPUT", "-m", "conntrack", "--ctstate", "NEW", "-m", "comment", "--comment",
             "service portals", "-j", "KUBE-SERVICES"],
        ),
    ]  # fmt: skip


def test_nothing_new_is_nothing_to_undo() -> None:
    plan = chain_removal(BEFORE, saved_chains(BEFORE))
    assert (plan.jumps, plan.chains) == ([], [])


MOUNTINFO = """\
22 1 0:21 / / rw - ext4 /dev/vda rw
30 22 0:25 / /tmp/node/kubelet/pods/a/volumes/kube-api-access rw - tmpfs tmpfs rw
31 22 0:26 / /tmp/node/containerd/state/run/abc/rootfs rw - overlay overlay rw
32 31 0:27 / /tmp/node/containerd/state/run/abc/rootfs/proc rw - proc proc rw
33 22 0:28 / /tmp/node-other/x rw - tmpfs tmpfs rw
34 22 0:29 / /tmp/node/with\\040space rw - tmpfs tmpfs rw
"""


def test_mount_points_under_a_folder_deepest_first() -> None:
    assert mount_points_under(MOUNTINFO, "/tmp/node") == [
        "/tmp/node/containerd/state/run/abc/rootfs/proc",
        "/tmp/node/kubelet/pods/a/volumes/kube-api-access",
        "/tmp/node/containerd/state/run/abc/rootfs",
        "/tmp/node/with space",
    ]
