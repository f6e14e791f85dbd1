"""Megabyte blocks that bodies are received into, handed back once their bytes are written.

A fresh ``bytearray`` of a megabyte is zeroed, then faulted in page by page as the socket
fills it, then unmapped when freed: 5-6% of the CPU of a run over files of megabytes here
(memset 2.8%, page faults 2.7%, munmap 0.4%). A block given back is reused as it is: the
socket overwrites it from its first byte, and only the bytes it wrote are handed over.

Only its last holder may give a block back, and only once it no longer reads it: the sink,
after the block was hashed and written (never a block also sent on to an object store's
upload, which may still hold it).
"""

from __future__ import annotations

BLOCK = 1 << 20  # the largest piece of a body of known length handed over
KEEP = 32  # blocks kept for reuse: enough for 16 downloads each with one block in flight


class Blocks:
    """A free list of whole blocks (thread-safe: one list operation each, under the GIL)."""

    def __init__(self, keep: int = KEEP) -> None:
        self._free: list[bytearray] = []
        self._keep = keep

    def take(self, size: int) -> bytearray:
        """A block of ``size`` bytes: a reused one when whole, else a fresh one."""
        if size == BLOCK and self._free:
            try:
                return self._free.pop()
            except IndexError:  # taken by another thread since the check
                pass
        return bytearray(size)

    def give(self, chunk: object) -> None:
        """Take ``chunk`` back if it is a whole block (anything else is left to the GC)."""
        if type(chunk) is bytearray and len(chunk) == BLOCK and len(self._free) < self._keep:
            self._free.append(chunk)


BLOCKS = Blocks()
