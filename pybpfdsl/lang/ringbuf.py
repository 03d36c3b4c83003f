"""`RingBuf`: records a program emits for user space, through a kernel ring buffer while it is loaded.

Its own module beside `lang.state` (whose `StateObject` it is): a ring buffer is no key-value map, and
its consumer (a thread-safe queue of arrived records, the kernel ring's page layout) is its own concern.
"""

from __future__ import annotations

import mmap
import threading
import time
from typing import Generic, Protocol, TypeVar

from pybpfdsl.lang.state import MapKind, StateObject, shown
from pybpfdsl.lang.structs import Struct

R = TypeVar("R", bound=Struct)

#: The size of a `RingBuf` declared without one: 256 KiB.
DEFAULT_RINGBUF_SIZE = 256 * 1024
#: Each record in a kernel ring buffer takes an 8-byte header, and records are 8-byte aligned.
RINGBUF_HEADER_SIZE = 8


class RingBufConsumer(Protocol):
    """What the runtime provides while a program is loaded: a reader of the kernel ring buffer."""

    def fetch(self, timeout: float | None) -> list[Struct]:
        """The records the kernel has produced, consumed from the ring, oldest first. `timeout=None`
        returns at once; a number waits up to that many seconds for at least one record."""
        ...

    def close(self) -> None:
        """Release the reader (the records still in the ring are fetched before this is called)."""
        ...


class RingBuf(StateObject, Generic[R]):
    """A ring buffer of `T` records, sent from the program to user space: `RingBuf(Event, 256 * 1024)`.

    In the DSL, `events.output(Event(...))` appends a record; as an expression it is True when the
    record was written and False when the buffer was full (the record is then lost, as in the kernel).
    In Python, `for rec in events.poll(timeout=...)` takes the pending records, oldest first: from the
    kernel while a program using the buffer is loaded, from a Python list otherwise (pure-Python mode
    and the IR interpreter). `events.records` lists the pending records without taking them.

    `size` is the buffer's capacity in bytes, as in the kernel: a power of two and a multiple of the
    page size. Each record occupies `T.size()` bytes plus an 8-byte header, rounded up to 8 bytes; the
    Python-side buffer refuses records by the kernel's rule (it holds at most `size - 1` bytes).
    """

    kind = MapKind.RINGBUF
    kind_name = "RingBuf"

    def __init__(self, record: type[R], size: int = DEFAULT_RINGBUF_SIZE) -> None:
        super().__init__()
        if not (isinstance(record, type) and issubclass(record, Struct) and record is not Struct):
            raise TypeError(f"a RingBuf's record type must be a Struct subclass, not {shown(record)}")
        page = mmap.PAGESIZE
        if isinstance(size, bool) or not isinstance(size, int) or size <= 0:
            raise TypeError(f"a RingBuf's size must be a positive integer number of bytes, not {size!r}")
        if size & (size - 1) or size % page:
            raise TypeError(f"a RingBuf's size must be a power of two and a multiple of the page size "
                            f"({page} bytes), not {size}; e.g. {DEFAULT_RINGBUF_SIZE} (256 KiB)")
        self.record: type[R] = record
        self.size = size
        self.footprint = (record.size() + RINGBUF_HEADER_SIZE + 7) // 8 * 8
        if self.footprint > size - 1:
            raise TypeError(f"{record.__name__} records ({record.size()} bytes) do not fit a {size}-byte RingBuf")
        self._records: list[R] = []
        self._consumer: RingBufConsumer | None = None
        self._arrived = threading.Condition()

    # Kernel binding (the runtime calls these while loading and closing a program).
    def bind_ringbuf(self, consumer: RingBufConsumer) -> None:
        """Read records from the kernel through `consumer` from now on."""
        self._consumer = consumer

    def unbind_ringbuf(self) -> None:
        """Fetch what is left in the kernel ring into the Python-side list, then release the reader."""
        consumer, self._consumer = self._consumer, None
        if consumer is None:
            return
        try:
            self._take(consumer.fetch(None))
        finally:
            consumer.close()

    @property
    def bound(self) -> bool:
        return self._consumer is not None

    def _take(self, records: list[Struct]) -> None:
        for rec in records:
            if not isinstance(rec, self.record):
                raise TypeError(f"{self.name or 'RingBuf'} holds {self.record.__name__} records, not {rec!r}")
            self._records.append(rec)

    # Raw access, used by executions of the DSL.
    def raw_output(self, record: Struct) -> bool:
        """Append a record; False (and the record is dropped) when the buffer is full.

        Executions outside the kernel write to the Python-side list, also while a program is loaded
        (user space cannot produce into a kernel ring buffer).
        """
        if not isinstance(record, self.record):
            raise TypeError(f"{self.name or 'RingBuf'} holds {self.record.__name__} records, not {record!r}")
        with self._arrived:
            if (len(self._records) + 1) * self.footprint > self.size - 1:
                return False
            self._records.append(record)
            self._arrived.notify_all()
        return True

    # The Python (control-plane) view.
    def output(self, record: R, /) -> bool:
        """What `events.output(record)` does in a DSL function, here on the Python-side buffer."""
        return self.raw_output(record)

    def poll(self, timeout: float | None = None) -> list[R]:
        """Take the pending records, oldest first (records output before a program was loaded come
        before the kernel's). `timeout=None` does not wait; a number waits up to that many seconds for
        at least one record."""
        if timeout is not None and timeout < 0:
            raise ValueError(f"timeout must be None or a non-negative number of seconds, not {timeout!r}")
        consumer = self._consumer
        if consumer is not None:
            self._take(consumer.fetch(None if self._records else timeout))
        elif timeout and not self._records:
            deadline = time.monotonic() + timeout
            with self._arrived:
                while not self._records and (left := deadline - time.monotonic()) > 0:
                    self._arrived.wait(left)
        with self._arrived:
            out, self._records = self._records, []
        return out

    @property
    def records(self) -> list[R]:
        """The pending records, oldest first, without taking them (while loaded, the kernel's records
        are moved to the Python side first)."""
        if self._consumer is not None:
            self._take(self._consumer.fetch(None))
        return list(self._records)

    def clear(self) -> None:
        """Drop every pending record."""
        self.poll()

    def __len__(self) -> int:
        return len(self.records)

    def save(self) -> object:
        return self.records

    def restore(self, saved: object) -> None:
        assert isinstance(saved, list)
        self._records = list(saved)

    def __repr__(self) -> str:
        return f"RingBuf({self.name or '?'}: {self.record.__name__}, {self.size} bytes, {len(self)} pending)"
