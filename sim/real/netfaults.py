"""Network partitions between real processes on one machine: iptables DROP rules by process identity.

Every JVM runs with its own group id (:func:`node_gid`: broker b 61000+b, the controller 61999, the
clients 61998; the user stays root, so the cache stays readable). All processes connect from
127.0.0.1, so an address alone cannot tell a broker's fetches from a client's requests; instead
each new connection is marked with its initiator (``CONNMARK`` on the first packet, by the
socket's group: ``-m owner --gid-owner``), and a cut drops the packets a side sends on the links
concerned, both on connections it initiated (``--mark`` its own, ``-d`` the other's listener
address) and on those the other side initiated (``--mark`` theirs). Loopback packets pass the
OUTPUT chain once, which is where every rule sits. TCP then sees silence, as in the simulator's
partition (no reset): senders learn only by their timeouts.

All rules live in two chains of this run (``KSIM<pid>`` in the mangle and filter tables) jumped to
from OUTPUT; :meth:`Firewall.close` removes them (at the end of a run, on error, on a signal, at
exit). :func:`available` tests with a real connection that such rules take effect here.
"""

from __future__ import annotations

import atexit
import os
import shutil
import socket
import subprocess
import sys
import threading

__all__ = ["node_gid", "CLIENTS", "CONTROLLER_NODE", "available", "Firewall", "peers_of"]

CLIENTS = "clients"
CONTROLLER_NODE = "controller"
_BASE_GID = 61000


def node_gid(node) -> int:
    """The group id a node's processes run with: broker id, 'controller' or 'clients'."""
    if node == CONTROLLER_NODE:
        return _BASE_GID + 999
    if node == CLIENTS:
        return _BASE_GID + 998
    return _BASE_GID + int(node)


def _mark(node) -> int:
    return node_gid(node) - _BASE_GID + 1


def _iptables(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["iptables", "-w", *args], capture_output=True, text=True, check=check)


_AVAILABLE: str | None | bool = False  # False: not tested yet; None: works; str: why not


def available() -> str | None:
    """None if partitions can be made here, else one line saying why not (tested once per process)."""
    global _AVAILABLE
    if _AVAILABLE is not False:
        return _AVAILABLE  # type: ignore[return-value]
    _AVAILABLE = _test()
    return _AVAILABLE


def _test() -> str | None:
    if shutil.which("iptables") is None:
        return "network partitions need iptables (apt-get install -y iptables)"
    if os.geteuid() != 0:
        return "network partitions need root (iptables rules and a group id per process)"
    chain = f"KSIMT{os.getpid()}"
    server_gid, client_gid = _BASE_GID + 990, _BASE_GID + 991
    srv = None
    try:
        _iptables("-t", "mangle", "-N", chain)
        _iptables("-N", chain)
        _iptables("-t", "mangle", "-I", "OUTPUT", "-j", chain)
        _iptables("-I", "OUTPUT", "-j", chain)
        _iptables("-t", "mangle", "-A", chain, "-m", "owner", "--gid-owner", str(client_gid), "-m", "conntrack",
                  "--ctstate", "NEW", "-j", "CONNMARK", "--set-mark", "77")
        _iptables("-A", chain, "-m", "owner", "--gid-owner", str(server_gid), "-m", "connmark", "--mark", "77",
                  "-j", "DROP")
        code = ("import socket,sys\ns=socket.socket();s.bind(('127.0.0.8',0));s.listen();print(s.getsockname()[1],"
                "flush=True)\nwhile True:\n c,_=s.accept();c.recv(4);c.sendall(b'pong')\n")
        srv = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, group=server_gid,
                               extra_groups=[])
        port = int(srv.stdout.readline())
        probe = ("import socket,sys\nc=socket.socket();c.settimeout(1.5)\ntry:\n c.connect(('127.0.0.8',%d));"
                 "c.sendall(b'ping');c.recv(4);print('through')\nexcept OSError:\n print('dropped')\n" % port)
        cut = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, group=client_gid,
                             extra_groups=[], timeout=30).stdout.strip()
        free = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=30).stdout.strip()
        if cut != "dropped" or free != "through":
            return "network partitions need iptables rules that take effect on loopback, and here they do not"
        return None
    except (subprocess.CalledProcessError, OSError, ValueError, subprocess.TimeoutExpired) as e:
        detail = getattr(e, "stderr", "") or str(e)
        return f"network partitions need working iptables rules: {' '.join(str(detail).split())[:150]}"
    finally:
        if srv is not None:
            srv.kill()
            srv.wait()
        _iptables("-t", "mangle", "-D", "OUTPUT", "-j", chain, check=False)
        _iptables("-D", "OUTPUT", "-j", chain, check=False)
        for t in (("-t", "mangle"), ()):
            _iptables(*t, "-F", chain, check=False)
            _iptables(*t, "-X", chain, check=False)


def peers_of(target: int, between: list[str], brokers: int) -> list:
    """The nodes on the other side of a cut of broker `target` (`between`: peers, controller, clients, all)."""
    out: list = []
    kinds = {"peers", "controller", "clients"} if "all" in between else set(between)
    if "peers" in kinds:
        out += [b for b in range(brokers) if b != target]
    if "controller" in kinds:
        out.append(CONTROLLER_NODE)
    if "clients" in kinds:
        out.append(CLIENTS)
    return out


class Firewall:
    """This run's iptables chains: connection marks from the start, DROP rules per active cut."""

    _live: "set[Firewall]" = set()
    _lock = threading.Lock()

    def __init__(self, nodes: list, address) -> None:
        """`nodes`: every node (broker ids, 'controller', 'clients'); `address(node)`: its listener IP or None."""
        self.chain = f"KSIM{os.getpid()}"
        self.address = address
        self.cuts: dict[object, list[list[str]]] = {}
        self._closed = False
        _iptables("-t", "mangle", "-N", self.chain)
        _iptables("-N", self.chain)
        with Firewall._lock:
            Firewall._live.add(self)
        _iptables("-t", "mangle", "-I", "OUTPUT", "-j", self.chain)
        _iptables("-I", "OUTPUT", "-j", self.chain)
        for n in nodes:
            _iptables("-t", "mangle", "-A", self.chain, "-m", "owner", "--gid-owner", str(node_gid(n)),
                      "-m", "conntrack", "--ctstate", "NEW", "-j", "CONNMARK", "--set-mark", str(_mark(n)))

    def _drop(self, sender, receiver) -> list[list[str]]:
        """Rules dropping what `sender` sends to `receiver` (on connections either side initiated)."""
        rules = [["-m", "owner", "--gid-owner", str(node_gid(sender)), "-m", "connmark", "--mark", str(_mark(receiver)),
                  "-j", "DROP"]]
        addr = self.address(receiver)
        if addr is not None:
            rules.append(["-m", "owner", "--gid-owner", str(node_gid(sender)), "-m", "connmark", "--mark",
                          str(_mark(sender)), "-d", addr, "-j", "DROP"])
        return rules

    def cut(self, key, target, others: list, direction: str) -> None:
        """Start a cut of `target` from `others`: both, outbound (target cannot send), inbound (cannot receive)."""
        rules = []
        for o in others:
            if direction in ("both", "outbound"):
                rules += self._drop(target, o)
            if direction in ("both", "inbound"):
                rules += self._drop(o, target)
        for r in rules:
            _iptables("-A", self.chain, *r)
        self.cuts[key] = rules

    def heal(self, key) -> None:
        for r in self.cuts.pop(key, []):
            _iptables("-D", self.chain, *r, check=False)

    def close(self) -> None:
        """Remove every rule and both chains (idempotent)."""
        if self._closed:
            return
        self._closed = True
        self.cuts.clear()
        _iptables("-t", "mangle", "-D", "OUTPUT", "-j", self.chain, check=False)
        _iptables("-D", "OUTPUT", "-j", self.chain, check=False)
        for t in (("-t", "mangle"), ()):
            _iptables(*t, "-F", self.chain, check=False)
            _iptables(*t, "-X", self.chain, check=False)
        with Firewall._lock:
            Firewall._live.discard(self)


def _close_all() -> None:
    for fw in list(Firewall._live):
        fw.close()


atexit.register(_close_all)
