"""Two "nodes" on one machine: two network namespaces joined by a veth pair, each running its
own torchrun agent (c10d rendezvous on node 0's address, gloo over the veth link).

Node 1 sees the run directory read-only (a bind mount in its own mount namespace), as a node
that must not write to the shared file system would: any write by rank 1 fails the job.
Needs root (CAP_SYS_ADMIN / CAP_NET_ADMIN), `ip` (iproute2) and `unshare` (util-linux)."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass

SUBNET = "10.231.7"  # private addresses that exist only inside the two namespaces
RDZV_PORT = 29400


def run(*cmd: str) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60)


def unavailable_reason() -> str | None:
    """Why two network namespaces cannot be made here, or None when they can."""
    if not sys.platform.startswith("linux"):
        return "network namespaces are Linux only"
    if os.geteuid() != 0:
        return "network namespaces need root (CAP_SYS_ADMIN and CAP_NET_ADMIN)"
    missing = [tool for tool in ("ip", "unshare", "mount") if shutil.which(tool) is None]
    if missing:
        return f"missing tools: {', '.join(missing)} (iproute2, util-linux)"
    return None


@dataclass
class TwoNodes:
    """Namespaces `names[i]` with veth `links[i]` at address `addresses[i]`."""

    names: tuple
    links: tuple
    addresses: tuple

    @classmethod
    def create(cls) -> "TwoNodes":
        """Creates both namespaces and the link; RuntimeError (with `ip`'s message) if it fails."""
        tag = f"{os.getpid() % 100000}"
        nodes = cls((f"sdd{tag}n0", f"sdd{tag}n1"), (f"sdd{tag}v0", f"sdd{tag}v1"),
                    (f"{SUBNET}.1", f"{SUBNET}.2"))
        steps = [("ip", "netns", "add", nodes.names[0]), ("ip", "netns", "add", nodes.names[1]),
                 ("ip", "link", "add", nodes.links[0], "netns", nodes.names[0], "type", "veth",
                  "peer", "name", nodes.links[1], "netns", nodes.names[1])]
        for name, link, address in zip(nodes.names, nodes.links, nodes.addresses):
            steps += [("ip", "-n", name, "addr", "add", f"{address}/24", "dev", link),
                      ("ip", "-n", name, "link", "set", link, "up"), ("ip", "-n", name, "link", "set", "lo", "up")]
        for step in steps:
            done = run(*step)
            if done.returncode != 0:
                nodes.delete()
                raise RuntimeError(f"`{' '.join(step)}` failed: {done.stderr.strip()}")
        return nodes

    def delete(self) -> None:
        """Removes both namespaces (the veth pair goes with them)."""
        for name in self.names:
            run("ip", "netns", "delete", name)

    def torchrun(self, read_only_on_node1: str, args: list, timeout: float = 300) -> list:
        """Runs `python -m torch.distributed.run --nnodes 2 --nproc-per-node 1 ... args` on both
        nodes at once; returns their CompletedProcess objects (node 0 first)."""
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        procs = []
        for node, (name, link, address) in enumerate(zip(self.names, self.links, self.addresses)):
            launch = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--nproc-per-node", "1",
                      "--rdzv-backend", "c10d", "--rdzv-endpoint", f"{self.addresses[0]}:{RDZV_PORT}",
                      "--rdzv-id", f"sdd-test-{os.getpid()}", "--rdzv-conf", f"is_host={str(node == 0).lower()}",
                      "--local-addr", address, *args]
            command = shlex.join(launch)
            if node == 1:
                path = shlex.quote(read_only_on_node1)
                command = f"mount --bind {path} {path} && mount -o remount,ro,bind {path} {path} && exec {command}"
            cmd = ["ip", "netns", "exec", name, "unshare", "--mount", "--propagation", "private",
                   "sh", "-c", command]
            procs.append(subprocess.Popen(cmd, env={**env, "GLOO_SOCKET_IFNAME": link}, stdout=subprocess.PIPE,
                                          stderr=subprocess.PIPE, text=True))
        results = []
        for proc in procs:
            try:
                out, err = proc.communicate(timeout=timeout)
            except subprocess.TimeoutExpired:
                for other in procs:
                    other.kill()
                raise
            results.append(subprocess.CompletedProcess(proc.args, proc.returncode, out, err))
        return results
