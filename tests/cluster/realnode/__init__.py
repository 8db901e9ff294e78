"""A real node (`real-0`): kubelet, containerd and runc, kube-proxy, a host-only bridge, and the
images they run, built locally with no registry. See REALNODE.md in the design notes."""
