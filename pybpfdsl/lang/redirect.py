"""XDP_REDIRECT: where a program sends a packet, and the maps of devices and CPUs it sends it through.

`redirect(ifindex)` (`bpf_redirect`) sends the packet out of interface `ifindex`; `ports.redirect(key)`
(`bpf_redirect_map`) sends it to the device (`DevMap`) or the CPU (`CpuMap`) in slot `key`, which Python
fills (`ports[0] = ifindex`; `cpus[0] = queue size`). Both return the action to return: XDP_REDIRECT, or
for a map slot that is empty the action given as `miss` (XDP_ABORTED unless said; the kernel takes the
miss action from the low two bits of the flags, so it is one of XDP_ABORTED, XDP_DROP, XDP_PASS, XDP_TX).

Outside the kernel the target is observable: each execution records it (`RedirectTarget`) where a test
or the differential harness reads it (`last_redirect`); the kernel's own test run does not report it.
As in the kernel (`bpf_redirect_info`: the target and the last index), a redirect through an empty slot
forgets the target: what an XDP_REDIRECT returned earlier in the run then goes to the device numbered by
the last index (the slot of the last redirect that found one, or the last `redirect(ifindex)`), not to
the earlier target.
"""

from __future__ import annotations

import contextvars
from dataclasses import dataclass

from pybpfdsl.lang.actions import XdpAction
from pybpfdsl.lang.state import Array, MapKind, RawValue


@dataclass(frozen=True)
class RedirectTarget:
    """Where an XDP_REDIRECT goes: interface `number` (`map_name` None: bpf_redirect), or slot `number`
    of map `map_name` (bpf_redirect_map)."""

    map_name: str | None
    number: int

    def __str__(self) -> str:
        return f"ifindex {self.number}" if self.map_name is None else f"{self.map_name}[{self.number}]"


_last: contextvars.ContextVar[RedirectTarget | None] = contextvars.ContextVar("pybpfdsl_redirect", default=None)
_index: contextvars.ContextVar[int | None] = contextvars.ContextVar("pybpfdsl_redirect_index", default=None)
"""The kernel's `bpf_redirect_info.tgt_index`: the number the last redirect that did not miss chose."""


def record_redirect(target: RedirectTarget | None) -> None:
    """Set the target the next XDP_REDIRECT goes to (None: forget it and the last index, before a new run)."""
    _last.set(target)
    _index.set(None if target is None else target.number)


def record_miss() -> None:
    """A redirect through an empty slot: the target becomes the device numbered by the last index (none
    when no redirect chose one in this run), as `bpf_redirect_map` leaves the kernel's redirect state."""
    _last.set(after_miss(_index.get()))


def after_miss(index: int | None) -> RedirectTarget | None:
    """The target after a redirect through an empty slot, given the last index (see `record_miss`)."""
    return None if index is None else RedirectTarget(None, index)


def last_redirect() -> RedirectTarget | None:
    """The target the last `redirect` call of a pure-Python run in this context chose."""
    return _last.get()


def redirect_to(ifindex: int) -> int:
    """`bpf_redirect(ifindex, 0)`: XDP_REDIRECT, with interface `ifindex` (its low 32 bits) the target."""
    record_redirect(RedirectTarget(None, ifindex & 0xFFFFFFFF))
    return int(XdpAction.REDIRECT)


MISS_ACTIONS = frozenset({XdpAction.ABORTED, XdpAction.DROP, XdpAction.PASS, XdpAction.TX})
"""The actions a redirect through an empty map slot may return (the low two bits of the flags)."""


class _RedirectMap(Array):
    """An array of targets; a slot is empty until Python fills it, and may be emptied again (`del`)."""

    def __init__(self, max_entries: int) -> None:
        from pybpfdsl.lang.types import u32

        super().__init__(u32, max_entries)

    def raw_lookup(self, key: RawValue) -> RawValue | None:
        assert isinstance(key, int)
        if not 0 <= key < self.max_entries:
            return None
        if self._backing is not None:
            return self._backing.lookup(key)
        return self._data.get(key)

    def raw_delete(self, key: RawValue) -> bool:
        if self._backing is not None:
            return self._backing.delete(key)
        return self._data.pop(key, None) is not None

    def raw_keys(self) -> list[RawValue]:
        return [k for k in range(self.max_entries) if self.raw_lookup(k) is not None]

    def redirect(self, key: int, miss: int = XdpAction.ABORTED) -> int:
        """`bpf_redirect_map(self, key, miss)`: XDP_REDIRECT to slot `key` when it is filled, else `miss`."""
        slot = key & 0xFFFFFFFF
        if self.raw_lookup(slot) is None:
            record_miss()
            return int(miss) & 3
        assert self.name is not None
        record_redirect(RedirectTarget(self.name, slot))
        return int(XdpAction.REDIRECT)


class DevMap(_RedirectMap):
    """Devices to redirect to (BPF_MAP_TYPE_DEVMAP): `ports = DevMap(8)`, `ports[0] = ifindex` in Python,
    `return ports.redirect(0)` in the program. A slot holds an interface index the kernel knows."""

    kind = MapKind.DEVMAP
    kind_name = "DevMap"


class CpuMap(_RedirectMap):
    """CPUs to redirect to (BPF_MAP_TYPE_CPUMAP): `cpus = CpuMap(4)`, `cpus[1] = 192` (the queue size of
    CPU 1, which the kernel needs above 0) in Python, `return cpus.redirect(1)` in the program."""

    kind = MapKind.CPUMAP
    kind_name = "CpuMap"


__all__ = ["CpuMap", "DevMap", "MISS_ACTIONS", "RedirectTarget", "after_miss", "last_redirect", "record_miss",
           "record_redirect", "redirect_to"]
