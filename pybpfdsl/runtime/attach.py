"""Attach programs to network interfaces through BPF links; live state; hot swap.

    with attach(port_acl_filter, "eth0") as a:     # or port_acl_filter.attach("eth0")
        port_acl[8080] = DENY                       # live: the kernel map changes at once
        a.replace(port_acl_filter_v2)               # atomic swap, maps (and counters) carried over

`attach` compiles and loads the program (or takes a `LoadedProgram`), puts it through every gate in
`GATES` (today: the kernel verifier, which runs when the program is loaded; later a userspace verifier
and a Z3 equivalence proof plug in as more `Gate` objects), and only then creates a BPF link
(`bpf_link_create` with `BPF_XDP`) on the interface. A link belongs to the process: when the process
exits, even by SIGKILL, the kernel closes its fds and the program leaves the interface. With `pin=` (a
path on bpffs) the link is pinned and stays until `detach(ifname)` or `Attachment.detach()` removes it.

While attached, the program's state objects stay bound to the kernel maps: `g.value = 0.2`,
`acl[8080] = 1` and `counters.items()` act on the running program. `Attachment.replace(new)` loads the
new program reusing the running program's maps of the same name (and its `.bss`/`.data` sections
when their layout is unchanged), refuses it before changing anything when a map of the same name has
a different type, then switches with `bpf_link_update`: no packet meets the interface without a
program and no state is lost. Detaching copies the kernel's last values back into the state objects.

Interfaces are looked up, and links created, in the calling thread's network namespace.

Every failure the user can fix is an `AttachError` subclass whose message says what to do:
`InterfaceNotFound`, `NoPrivilege`, `ModeNotSupported`, `InterfaceBusy`, `BpffsNotMounted`,
`PinPathInUse`, `AttachRefused` (a gate failed) and `IncompatibleReplacement`.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import socket
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING, Final, Literal, Protocol, Self, runtime_checkable

from pybpfdsl.ir.nodes import GlobalDecl, MapDecl, Program, RingBufDecl
from pybpfdsl.runtime import links
from pybpfdsl.runtime.bpf_object import LoadError
from pybpfdsl.runtime.elf_symbols import variable_locations
from pybpfdsl.runtime.errors import KernelVerifierError
from pybpfdsl.runtime.loaded import LoadedProgram, PendingReplacement
from pybpfdsl.runtime.state_binding import GlobalBacking

if TYPE_CHECKING:
    from pybpfdsl.program import CompiledProgram, XdpProgram

__all__ = [
    "GATES",
    "AttachError",
    "AttachRefused",
    "Attachment",
    "BpffsNotMounted",
    "Candidate",
    "Detached",
    "Gate",
    "GateResult",
    "IncompatibleReplacement",
    "InterfaceBusy",
    "InterfaceNotFound",
    "KernelVerifierGate",
    "ProofGate",
    "UserspaceVerifierGate",
    "Mode",
    "ModeNotSupported",
    "NoPrivilege",
    "PinPathInUse",
    "attach",
    "attached_program",
    "detach",
    "live_attachments",
]

_log = logging.getLogger("pybpfdsl.runtime")

Mode = Literal["auto", "skb", "native"]
_MODES: Final = ("auto", "skb", "native")
_MODE_FLAGS: Final = {"native": links.XDP_FLAGS_DRV_MODE, "skb": links.XDP_FLAGS_SKB_MODE}
# Errors of a native attach after which "auto" tries generic (skb) mode: the driver has no XDP
# (EOPNOTSUPP) or refuses this configuration (EINVAL, e.g. an MTU too large for native XDP).
_NATIVE_FALLBACK_ERRNOS: Final = frozenset({errno.EOPNOTSUPP, errno.EINVAL})
_SECTIONS: Final = (".bss", ".data")
_PRIVILEGE_HINT: Final = ("run as root, or give the process CAP_BPF and CAP_NET_ADMIN (CAP_SYS_ADMIN on "
                          "kernels before 5.8), e.g. `sudo setcap cap_bpf,cap_net_admin+ep <python binary>`")


def _errname(err: int) -> str:
    """The symbolic name of an errno as the kernel headers spell it (EOPNOTSUPP, not ENOTSUP)."""
    if err == errno.EOPNOTSUPP:
        return "EOPNOTSUPP"
    return errno.errorcode.get(err, str(err))


# -- errors -----------------------------------------------------------------------------------------


class AttachError(Exception):
    """Attaching, detaching or replacing failed; the message says what to do. `errno` is the kernel's
    error number when there is one."""

    errno: int | None = None


class InterfaceNotFound(AttachError, LookupError):
    """No interface of that name in this network namespace; `available` lists the ones there are."""

    def __init__(self, ifname: str, available: Sequence[str]) -> None:
        self.ifname = ifname
        self.available = list(available)
        self.errno = errno.ENODEV
        names = ", ".join(self.available) or "none"
        super().__init__(f"no network interface {ifname!r} in this network namespace; the interfaces here are: "
                         f"{names}. Check the name with `ip link`, or attach from the namespace that has it "
                         "(e.g. under `ip netns exec NS ...`).")


class NoPrivilege(AttachError, PermissionError):
    """The kernel said EPERM/EACCES: the process lacks CAP_BPF/CAP_NET_ADMIN."""

    def __init__(self, operation: str, err: int) -> None:
        self.operation = operation
        self.errno = err
        super().__init__(f"{operation} was refused with {_errname(err)} ({os.strerror(err)}): "
                         f"loading and attaching XDP programs needs privileges; {_PRIVILEGE_HINT}.")

    def __str__(self) -> str:  # PermissionError would format (errno, strerror) otherwise
        return str(self.args[0])


class ModeNotSupported(AttachError):
    """The interface's driver cannot run XDP in the requested mode."""

    def __init__(self, ifname: str, mode: str, err: int) -> None:
        self.ifname = ifname
        self.mode = mode
        self.errno = err
        super().__init__(f"the driver of {ifname!r} does not support {mode} XDP "
                         f"({_errname(err)}: {os.strerror(err)}); attach with mode=\"skb\" "
                         "(generic XDP: works on every interface, slower) or mode=\"auto\" (native when the "
                         "driver supports it, else skb).")


class InterfaceBusy(AttachError):
    """Another XDP program is already attached to the interface."""

    def __init__(self, ifname: str, prog_id: int, prog_name: str, mode: str, link_id: int | None,
                 pins: Sequence[str] = (), err: int = errno.EBUSY) -> None:
        self.ifname, self.prog_id, self.prog_name, self.mode = ifname, prog_id, prog_name, mode
        self.link_id, self.pins, self.errno = link_id, list(pins), err
        if link_id is not None:
            how = f"through BPF link {link_id}" + (f", pinned at {', '.join(pins)}" if pins else "")
            remove = (f"remove it with `pybpfdsl.runtime.attach.detach({ifname!r})` (or let the process "
                      "that attached it exit" + (", after removing the pin" if pins else "") + ")")
        else:
            how = "through netlink (without a BPF link)"
            remove = (f"remove it with `ip link set dev {ifname} xdp off` or "
                      f"`pybpfdsl.runtime.attach.detach({ifname!r})`")
        super().__init__(f"{ifname!r} already has an XDP program attached ({mode} mode): program id {prog_id}, "
                         f"name {prog_name!r}, {how}. An interface runs one XDP program per mode; {remove}, "
                         "or swap programs atomically with `Attachment.replace(...)` on the attachment that "
                         "owns it.")


class BpffsNotMounted(AttachError):
    """`pin=` names a place that is not on a BPF filesystem."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.errno = errno.EPERM
        super().__init__(f"cannot pin the link at {path!r}: {os.path.dirname(path) or '.'!r} is not on a BPF "
                         "filesystem (bpffs), which pins must live on. Mount one with "
                         "`mount -t bpf bpf /sys/fs/bpf` and pin under it, e.g. pin=\"/sys/fs/bpf/my_prog\".")


class PinPathInUse(AttachError):
    """Something is already pinned at the `pin=` path."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.errno = errno.EEXIST
        super().__init__(f"{path!r} already exists; choose another pin path, or remove the old pin (and "
                         "detach what it holds) with `pybpfdsl.runtime.attach.detach(ifname, pin=path)` or "
                         "`rm` if it is stale.")


class AttachRefused(AttachError):
    """A gate (a check every program must pass before it reaches an interface) failed.

    `gate` names the check, `reason` is what it said; nothing was attached or changed."""

    def __init__(self, program: str, ifname: str, action: str, gate: str, reason: str) -> None:
        self.program, self.ifname, self.action, self.gate, self.reason = program, ifname, action, gate, reason
        verb = "attach" if action == "attach" else "swap in"
        super().__init__(f"refusing to {verb} program {program!r} on {ifname!r}: the {gate} check failed; "
                         f"nothing was changed on the interface.\n{reason}")


class IncompatibleReplacement(AttachRefused):
    """The replacement declares a map (or Global) of the same name as the running program's with a
    different type, so its state could not be carried over."""

    def __init__(self, program: str, ifname: str, name: str, running: str, replacement: str) -> None:
        self.name, self.running, self.replacement = name, running, replacement
        reason = (f"{name!r} is {running} in the running program but {replacement} in the replacement; its "
                  "contents cannot be carried over. Keep the declaration as it is, or give the changed one "
                  "a new name (it then starts from its Python-side value).")
        super().__init__(program, ifname, "replace", "state compatibility", reason)


# -- gates ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GateResult:
    """A gate's verdict; `reason` says why (shown to the user when the gate fails)."""

    passed: bool
    reason: str = ""


@dataclass
class Candidate:
    """What the gates judge: a program on its way to an interface.

    `program`/`compiled` are the DSL function and its compilation (None when a `LoadedProgram` was
    given to `attach`); `prog_fd` is set once the kernel has loaded (and verified) the program, by
    `load()`, which the kernel verifier gate calls; gates placed after it can use the fd.
    """

    name: str
    ifname: str
    action: Literal["attach", "replace"]
    program: XdpProgram | None
    compiled: CompiledProgram | None
    prog_fd: int | None = None
    loader: Callable[[], int] | None = field(default=None, repr=False)

    def load(self) -> int:
        """Load the program into the kernel (once); raises `KernelVerifierError` if it is rejected."""
        if self.prog_fd is None:
            if self.loader is None:
                raise RuntimeError(f"candidate {self.name!r} has no way to be loaded")
            self.prog_fd = self.loader()
        return self.prog_fd


@runtime_checkable
class Gate(Protocol):
    """A check a program must pass before it is attached (or swapped in). `check` returns a
    `GateResult`; gates run in the order of the list given to `attach` (default `GATES`)."""

    name: str

    def check(self, candidate: Candidate) -> GateResult: ...


class KernelVerifierGate:
    """The kernel verifier: loads the program; fails with the verifier's complaint, on the Python line."""

    name = "kernel verifier"

    def check(self, candidate: Candidate) -> GateResult:
        try:
            candidate.load()
        except KernelVerifierError as exc:
            return GateResult(False, str(exc))
        return GateResult(True, "the kernel loaded the program")


# -- translation validation gate (pybpfdsl.verify.equivalence) --
class ProofGate:
    """The Z3 equivalence proof of bytecode against IR: refuses a program that is not proven (a
    counterexample, or unknown within the budget). Uses the verdict `compile()` recorded, or proves
    now when there is none (`attach` compiles without proving, `fn.load()` too); verdicts are cached
    by the object's bytes, on disk as well, so a program is proved once."""

    name = "equivalence proof"

    def check(self, candidate: Candidate) -> GateResult:
        from pybpfdsl.verify.equivalence.prove import prove_on_compile

        compiled = candidate.compiled
        if compiled is None:
            return GateResult(False, _NO_COMPILED)
        proof = compiled.proof
        if proof is None or proof.status == "skipped":
            proof = prove_on_compile(compiled)
        if proof.status != "proven":
            return GateResult(False, proof.report() + _override_hint(self.name))
        return GateResult(True, proof.summary())


class UserspaceVerifierGate:
    """pybpfdsl's own safety verifier: refuses what it cannot show safe, explaining the Python line."""

    name = "userspace verifier"

    def check(self, candidate: Candidate) -> GateResult:
        from pybpfdsl.verify.analysis.api import verify_program

        compiled = candidate.compiled
        if compiled is None:
            return GateResult(False, _NO_COMPILED)
        report = compiled.verification if compiled.verification is not None else verify_program(compiled)
        if not report.ok:
            return GateResult(False, report.format() + _override_hint(self.name))
        return GateResult(True, f"verified {len(report.instructions)} instructions")


_NO_COMPILED = ("no compiled program to check: attach the @xdp function itself, or a LoadedProgram made by "
                "fn.load()")


def _override_hint(gate: str) -> str:
    return ("\nto attach without this check (at your own risk), pass "
            f"gates=[g for g in pybpfdsl.runtime.attach.GATES if g.name != {gate!r}]")


GATES: list[Gate] = [UserspaceVerifierGate(), ProofGate(), KernelVerifierGate()]
"""The checks every program passes before `attach`/`replace`, in order: our verifier (whose errors name
the Python line), the Z3 proof that the bytecode does what the IR says, then the kernel verifier, which
loads it. Nothing reaches an interface unless all pass."""


def _run_gates(candidate: Candidate, gates: Iterable[Gate] | None) -> None:
    chosen = list(GATES if gates is None else gates)
    if not any(isinstance(g, KernelVerifierGate) for g in chosen):
        chosen.append(KernelVerifierGate())  # nothing reaches an interface without the kernel's verdict
    for gate in chosen:
        result = gate.check(candidate)
        _log.debug("gate %s on %s: %s", gate.name, candidate.name, result)
        if not result.passed:
            raise AttachRefused(candidate.name, candidate.ifname, candidate.action, gate.name, result.reason)


# -- interfaces -------------------------------------------------------------------------------------


def _interface_index(ifname: str) -> int:
    try:
        return socket.if_nametoindex(ifname)
    except OSError:
        available = [name for _, name in sorted(socket.if_nameindex())]
        raise InterfaceNotFound(ifname, available) from None


def _netns_id() -> int:
    try:
        return os.stat("/proc/thread-self/ns/net").st_ino
    except OSError:
        return 0


def _translate(exc: OSError, operation: str) -> AttachError | None:
    if exc.errno in (errno.EPERM, errno.EACCES):
        return NoPrivilege(operation, exc.errno)
    return None


def _find_xdp_link(ifindex: int, prog_ids: Iterable[int]) -> tuple[int, int] | None:
    """(link id, fd) of the XDP link on `ifindex` that runs one of `prog_ids`, or None."""
    wanted = set(prog_ids)
    for link_id in links.link_ids():
        try:
            fd = links.link_get_fd_by_id(link_id)
        except OSError:
            continue
        try:
            info = links.link_info(fd)
        except OSError:
            os.close(fd)
            continue
        if info.is_xdp and info.ifindex == ifindex and info.prog_id in wanted:
            return link_id, fd
        os.close(fd)
    return None


def _busy_error(ifname: str, ifindex: int, err: int = errno.EBUSY) -> InterfaceBusy | None:
    query = links.xdp_query(ifindex)
    if not query.attached:
        return None
    prog_id = query.prog_ids()[0]
    info = links.prog_info_by_id(prog_id)
    found = None
    pins: list[str] = []
    with contextlib.suppress(OSError):
        found = _find_xdp_link(ifindex, query.prog_ids())
    if found is not None:
        os.close(found[1])
        try:
            pins = links.find_pins(found[0])
        except OSError:
            pins = []
    return InterfaceBusy(ifname, prog_id, info.name if info else "?", query.mode_name,
                         found[0] if found else None, pins, err)


def attached_program(ifname: str) -> links.XdpQuery:
    """What XDP programs `ifname` (in this network namespace) runs (`.attached`, `.prog_ids()`)."""
    return links.xdp_query(_interface_index(ifname))


def _check_pin_path(pin: str) -> str:
    path = os.path.abspath(pin)
    if links.bpffs_mount_of(os.path.dirname(path)) is None:
        raise BpffsNotMounted(path)
    if os.path.lexists(path):
        raise PinPathInUse(path)
    return path


# -- attachments ------------------------------------------------------------------------------------

_LIVE: set[Attachment] = set()  # attachments not yet detached (kept alive: their state stays bound)
_LIVE_LOCK = threading.Lock()


@dataclass(frozen=True)
class Detached:
    """What `detach(ifname)` removed."""

    ifname: str
    prog_id: int
    prog_name: str
    link_id: int | None
    unpinned: tuple[str, ...] = ()


class Attachment:
    """A program attached to an interface through a BPF link; create with `attach`.

    Context manager: leaving the block detaches (also a pinned link). `detach()` is idempotent and
    copies the kernel's state back into the state objects (when `attach` loaded the program). An
    attachment that is never detached stays until the process exits (or, pinned, until `detach`).
    """

    def __init__(self, *, program: XdpProgram | None, loaded: LoadedProgram, owns_loaded: bool, ifname: str,
                 ifindex: int, mode: str, requested_mode: str, link_fd: int, pin: str | None,
                 fallback_reason: str | None) -> None:
        """Internal: use `attach`."""
        self.program = program
        self.loaded = loaded
        self.ifname = ifname
        self.ifindex = ifindex
        self.mode = mode
        self.requested_mode = requested_mode
        self.pin = pin
        self.fallback_reason = fallback_reason
        self.netns = _netns_id()
        self._owns_loaded = owns_loaded
        self._link_fd: int | None = link_fd
        self.link_id = links.link_info(link_fd).id
        self._lock = threading.RLock()

    @property
    def attached(self) -> bool:
        return self._link_fd is not None

    @property
    def prog_id(self) -> int:
        """The kernel id of the program the link runs now."""
        fd = self._ensure_attached()
        return links.link_info(fd).prog_id

    def _ensure_attached(self) -> int:
        if self._link_fd is None:
            raise AttachError(f"the attachment of {self._name()!r} to {self.ifname!r} was detached")
        return self._link_fd

    def _name(self) -> str:
        return self.program.name if self.program is not None else self.loaded.program.name

    def replace(self, new: XdpProgram, *, gates: Iterable[Gate] | None = None) -> None:
        """Swap `new` in for the running program, atomically (`bpf_link_update`).

        `new` is compiled and loaded reusing the running program's maps of the same name (contents
        kept) and its `.bss`/`.data` sections when their layout is unchanged (otherwise Globals of the
        same name start from the running program's current values), and must pass every gate. A map or
        Global of the same name with a different type raises `IncompatibleReplacement` before anything
        is loaded. On any failure the running program, its maps and its state bindings are unchanged.
        Afterwards the state objects are bound to the new program's (same) maps.
        """
        with self._lock:
            link_fd = self._ensure_attached()
            compiled = new.compile(prove=False)  # the proof gate proves (once: verdicts are cached)
            lowered = compiled.lowered
            program, state = lowered.program, lowered.state
            reuse, keep = _plan_replacement(self.loaded, program, compiled.elf, self.ifname)
            lines = {i + 1: text for i, text in enumerate(lowered.source.file_lines)}
            pending: list[PendingReplacement] = []

            def loader() -> int:
                try:
                    p = self.loaded.load_replacement(compiled.elf, program, state, reuse_maps=reuse, keep=keep,
                                                     source_lines=lines)
                except LoadError as exc:
                    translated = _translate_load(exc, new.name)
                    if translated is None:
                        raise
                    raise translated from exc
                pending.append(p)
                return p.prog_fd

            candidate = Candidate(new.name, self.ifname, "replace", new, compiled, loader=loader)
            try:
                _run_gates(candidate, gates)
                replacement = pending[0]
                try:
                    links.link_update(link_fd, replacement.prog_fd, old_prog_fd=self.loaded.fd)
                except OSError as exc:
                    raise _translate(exc, "bpf_link_update") or AttachError(
                        f"cannot swap {new.name!r} in on {self.ifname!r}: {exc}") from exc
            except BaseException:
                for p in pending:
                    p.discard()
                raise
            self.loaded.install(replacement)
            self.program = new

    def detach(self) -> None:
        """Remove the program from the interface (and the pin), then, if `attach` loaded the program,
        copy the kernel's state back into the state objects and unload. Idempotent."""
        with self._lock:
            fd, self._link_fd = self._link_fd, None
            if fd is None:
                return
            with _LIVE_LOCK:
                _LIVE.discard(self)
            try:
                if self.pin is not None:
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(self.pin)
                links.link_detach(fd)
            finally:
                os.close(fd)
                if self._owns_loaded:
                    self.loaded.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.detach()

    def __repr__(self) -> str:
        state = f"link {self.link_id}, {self.mode}" if self.attached else "detached"
        pinned = f", pinned at {self.pin}" if self.pin and self.attached else ""
        return f"<Attachment {self._name()!r} on {self.ifname!r} ({state}{pinned})>"


def _translate_load(exc: LoadError, name: str) -> AttachError | None:
    """A load failure for lack of privilege as `NoPrivilege`; None for the others (verifier included)."""
    if isinstance(exc, KernelVerifierError) or exc.errno not in (errno.EPERM, errno.EACCES):
        return None
    return NoPrivilege(f"loading program {name!r} into the kernel", exc.errno)


def attach(target: XdpProgram | LoadedProgram, ifname: str, mode: Mode = "auto", pin: str | None = None, *,
           gates: Iterable[Gate] | None = None) -> Attachment:
    """Attach an `@xdp` program (compiled and loaded here) or a `LoadedProgram` to `ifname`.

    `mode`: "native" (driver XDP), "skb" (generic XDP, any interface) or "auto" (native, falling back to
    skb when the driver cannot; `Attachment.mode` says which was used). `pin`: a path on bpffs where the
    link is pinned so that it outlives this process. `gates`: the checks to pass (default `GATES`; the
    kernel verifier always runs). Raises the `AttachError` subclasses in this module; on any failure
    nothing is attached and a program loaded here is unloaded again.
    """
    from pybpfdsl.program import XdpProgram

    if mode not in _MODES:
        raise ValueError(f"mode must be one of {', '.join(map(repr, _MODES))}, not {mode!r}")
    ifindex = _interface_index(ifname)
    pin_path = _check_pin_path(pin) if pin is not None else None
    busy = _busy_error(ifname, ifindex)
    if busy is not None:
        raise busy

    loaded_box: list[LoadedProgram] = []
    if isinstance(target, LoadedProgram):
        loaded_box.append(target)
        candidate = Candidate(target.program.name, ifname, "attach", None, target.compiled, prog_fd=target.fd)
        owns = False
        program = None
    elif isinstance(target, XdpProgram):
        # Proving is the proof gate's business: it runs if and only if the gates include it.
        compiled = target.compile(prove=False)
        lowered = compiled.lowered
        lines = {i + 1: text for i, text in enumerate(lowered.source.file_lines)}
        owns = True
        program = target

        def loader() -> int:
            try:
                lp = LoadedProgram.load(compiled.elf, lowered.program, lowered.state, source_lines=lines)
            except LoadError as exc:
                translated = _translate_load(exc, target.name)
                if translated is None:
                    raise
                raise translated from exc
            loaded_box.append(lp)
            return lp.fd

        candidate = Candidate(target.name, ifname, "attach", target, compiled, loader=loader)
    else:
        raise TypeError(f"attach takes an @xdp program or a LoadedProgram, not {type(target).__name__}")

    try:
        _run_gates(candidate, gates)
        loaded = loaded_box[0]
        link_fd, used, fallback = _create_link(loaded.fd, ifname, ifindex, mode)
        try:
            if pin_path is not None:
                try:
                    links.obj_pin(link_fd, pin_path)
                except OSError as exc:
                    if exc.errno == errno.EEXIST:
                        raise PinPathInUse(pin_path) from exc
                    raise _translate(exc, "bpf_obj_pin") or AttachError(
                        f"cannot pin the link at {pin_path!r}: {exc}") from exc
            attachment = Attachment(program=program, loaded=loaded, owns_loaded=owns, ifname=ifname,
                                    ifindex=ifindex, mode=used, requested_mode=mode, link_fd=link_fd,
                                    pin=pin_path, fallback_reason=fallback)
        except BaseException:
            try:
                links.link_detach(link_fd)
            finally:
                os.close(link_fd)
            raise
    except BaseException:
        if owns:
            for lp in loaded_box:
                lp.close()
        raise
    with _LIVE_LOCK:
        _LIVE.add(attachment)
    return attachment


def _create_link(prog_fd: int, ifname: str, ifindex: int, mode: str) -> tuple[int, str, str | None]:
    """Create the XDP link; returns (fd, mode used, why auto fell back to skb or None)."""
    tries = ["native", "skb"] if mode == "auto" else [mode]
    fallback: str | None = None
    for i, attempt in enumerate(tries):
        try:
            return links.link_create_xdp(prog_fd, ifindex, _MODE_FLAGS[attempt]), attempt, fallback
        except OSError as exc:
            err = exc.errno or 0
            translated = _translate(exc, "bpf_link_create (attaching to the interface)")
            if translated is not None:
                raise translated from exc
            if err in (errno.EBUSY, errno.EEXIST):
                busy = _busy_error(ifname, ifindex, err)
                if busy is not None:
                    raise busy from exc
            if err == errno.ENODEV:
                raise InterfaceNotFound(ifname, [n for _, n in sorted(socket.if_nameindex())]) from exc
            if attempt == "native" and err in _NATIVE_FALLBACK_ERRNOS:
                if i + 1 < len(tries):
                    fallback = f"native XDP failed with {_errname(err)}: {os.strerror(err)}"
                    _log.info("%s: %s; using skb (generic) mode", ifname, fallback)
                    continue
                raise ModeNotSupported(ifname, "native", err) from exc
            raise AttachError(f"cannot attach to {ifname!r} in {attempt} mode: {exc}") from exc
    raise AssertionError("unreachable")


# -- replacement planning ---------------------------------------------------------------------------


def _describe_map(decl: MapDecl) -> str:
    return f"a {decl.kind.name} map {decl.key_type} → {decl.value_type} with {decl.max_entries} entries"


def _describe(decl: MapDecl | GlobalDecl | RingBufDecl) -> str:
    if isinstance(decl, MapDecl):
        return _describe_map(decl)
    if isinstance(decl, GlobalDecl):
        return f"a Global of type {decl.type}"
    return f"a RingBuf of {decl.record} records ({decl.size} bytes)"


def _same(a: MapDecl | GlobalDecl | RingBufDecl, b: MapDecl | GlobalDecl | RingBufDecl) -> bool:
    if isinstance(a, MapDecl) and isinstance(b, MapDecl):
        return (a.kind, a.key_type, a.value_type, a.max_entries) == (b.kind, b.key_type, b.value_type,
                                                                     b.max_entries)
    if isinstance(a, GlobalDecl) and isinstance(b, GlobalDecl):
        return a.type == b.type
    if isinstance(a, RingBufDecl) and isinstance(b, RingBufDecl):
        return (a.record, a.size) == (b.record, b.size)
    return False


def _decls(program: Program) -> dict[str, MapDecl | GlobalDecl | RingBufDecl]:
    out: dict[str, MapDecl | GlobalDecl | RingBufDecl] = {}
    for d in (*program.maps, *program.globals, *getattr(program, "ringbufs", ())):
        out[d.name] = d
    return out


def _section_of(map_name: str) -> str | None:
    for section in _SECTIONS:
        if map_name == section or map_name.endswith(section):
            return section
    return None


def _plan_replacement(loaded: LoadedProgram, new: Program, new_elf: bytes,
                      ifname: str) -> tuple[dict[str, int], set[str]]:
    """Which of the running program's maps the replacement reuses (name → fd) and which declarations
    keep their kernel contents; raises `IncompatibleReplacement` on a same-name type mismatch."""
    old_decls = _decls(loaded.program)
    kernel_maps = loaded.bpf_object.maps
    reuse: dict[str, int] = {}
    keep: set[str] = set()
    for name, decl in _decls(new).items():
        old = old_decls.get(name)
        if old is None:
            continue
        if not _same(old, decl):
            raise IncompatibleReplacement(new.name, ifname, name, _describe(old), _describe(decl))
        if not isinstance(decl, GlobalDecl):
            info = kernel_maps.get(name)
            if info is not None:
                reuse[name] = info.fd
                keep.add(name)
    # Global-data sections: reused (contents and all) when the variables sit at the same places.
    old_layout: dict[str, dict[str, tuple[int, int]]] = {}
    for obj, backing in loaded.bound_state():
        if isinstance(backing, GlobalBacking) and obj.name is not None:
            section = _section_of(backing.section_map.name)
            if section is not None:
                old_layout.setdefault(section, {})[obj.name] = (backing.offset, backing.type.size)
    new_layout: dict[str, dict[str, tuple[int, int]]] = {}
    for name, loc in variable_locations(new_elf, _SECTIONS).items():
        new_layout.setdefault(loc.section, {})[name] = (loc.offset, loc.size)
    for section, variables in new_layout.items():
        info = loaded.bpf_object.find_section_map(section)
        if info is not None and old_layout.get(section) == variables:
            reuse[section] = info.fd
            keep.update(variables)
    return reuse, keep


# -- detaching by interface -------------------------------------------------------------------------


def detach(ifname: str, *, pin: str | None = None) -> Detached | None:
    """Remove the XDP program attached to `ifname` (in this network namespace), whoever attached it.

    A link made by this process is detached like `Attachment.detach()`. A link of another (or a dead)
    process is found by its interface, detached (`bpf_link_detach`) and its pins under the mounted
    bpffs (or `pin`) are removed; a program attached without a link (netlink) is removed too. Returns
    what was removed, or None when the interface had no XDP program.
    """
    ifindex = _interface_index(ifname)
    netns = _netns_id()
    with _LIVE_LOCK:
        mine = [a for a in _LIVE if a.ifindex == ifindex and a.netns == netns]
    query = links.xdp_query(ifindex)
    if mine:
        att = mine[0]
        prog_id = att.prog_id if att.attached else 0
        name = att._name()
        att.detach()
        return Detached(ifname, prog_id, name, att.link_id, (att.pin,) if att.pin else ())
    if not query.attached:
        if pin is not None and os.path.lexists(pin):
            os.unlink(pin)  # a stale pin of a link whose interface went away
        return None
    prog_id = query.prog_ids()[0]
    pinfo = links.prog_info_by_id(prog_id)
    name = pinfo.name if pinfo else "?"
    try:
        found = _find_xdp_link(ifindex, query.prog_ids())
    except OSError as exc:
        raise _translate(exc, "listing BPF links") or AttachError(f"cannot list BPF links: {exc}") from exc
    if found is None:
        flags = {links.XDP_ATTACHED_DRV: links.XDP_FLAGS_DRV_MODE, links.XDP_ATTACHED_SKB: links.XDP_FLAGS_SKB_MODE,
                 links.XDP_ATTACHED_HW: links.XDP_FLAGS_HW_MODE}.get(query.attach_mode, 0)
        try:
            links.xdp_detach(ifindex, flags)
        except OSError as exc:
            raise _translate(exc, "bpf_xdp_detach") or AttachError(f"cannot detach from {ifname!r}: {exc}") from exc
        return Detached(ifname, prog_id, name, None)
    link_id, fd = found
    try:
        pins = [pin] if pin is not None else links.find_pins(link_id)
        for path in pins:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
        try:
            links.link_detach(fd)
        except OSError as exc:
            raise _translate(exc, "bpf_link_detach") or AttachError(
                f"cannot detach link {link_id} from {ifname!r}: {exc}") from exc
    finally:
        os.close(fd)
    return Detached(ifname, prog_id, name, link_id, tuple(pins))


def live_attachments() -> list[Attachment]:
    """The attachments this process made and has not detached."""
    with _LIVE_LOCK:
        return list(_LIVE)

