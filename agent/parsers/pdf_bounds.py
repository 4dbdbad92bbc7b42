"""Bounds on what a PDF may make the reader do, checked before pdfium sees it: a hostile or broken file is
judged corrupt with its reason instead of taking the memory or the time of a whole run.

- Inflated content: every FlateDecode stream is inflated here, a slice at a time and never kept, counting its
  bytes; past MAX_INFLATED_BYTES for the whole file the file is refused. A flate bomb (4 MB that inflates to
  4 GiB, which took `fapiao verify` to 5.3 GB) stops after 64 MiB of inflation: about 0.1 s and a few MiB of
  memory. Streams are found by their `stream` keyword, not by parsing objects: a stream that does not inflate
  (an image, plain text) counts nothing, and a damaged one counts what it inflated to before the damage.
  A chain of FlateDecode filters is followed (a bomb inside a bomb). Real invoices inflate to under 1 MiB.
- Pages: more than MAX_PAGES is not an invoice (a long real one runs to a few pages); the parser checks it once
  pdfium has the page count, before reading any page.
Other decoders (LZW, run length) are left to the worker's memory limit (agent/workers.py).
"""

from __future__ import annotations

import re
import zlib

from agent.errors import FileCorrupt

MiB = 1 << 20
MAX_INFLATED_BYTES = 64 * MiB
MAX_PAGES = 100
INPUT_SLICE = 64 * 1024  # compressed bytes fed to the inflater at a time
OUTPUT_SLICE = 4 * MiB  # inflated bytes produced (and dropped) at a time
MAX_FILTER_CHAIN = 4  # FlateDecode applied this many times over is still inflated and counted
STREAM_START = re.compile(rb"(?<!end)stream\r?\n")


def check_inflation(data: bytes, limit: int = MAX_INFLATED_BYTES) -> int:
    """The bytes all the file's flate streams inflate to; FileCorrupt once that passes `limit`."""
    view, total = memoryview(data), 0
    for match in STREAM_START.finditer(data):
        total += _inflated_size(view[match.end() :], limit - total)
        if total > limit:
            raise FileCorrupt(f"content inflates to more than {limit // MiB} MiB (a flate bomb?)")
    return total


def _inflated_size(view: memoryview, budget: int) -> int:
    """What the zlib stream at the start of `view` inflates to, counted up to just past `budget`."""
    inflation = _Inflation(budget)
    for start in range(0, len(view), INPUT_SLICE):
        inflation.feed(bytes(view[start : start + INPUT_SLICE]))
        if inflation.done:
            break
    return inflation.total


def _is_zlib_header(data: bytes) -> bool:
    return len(data) >= 2 and data[0] & 0x0F == 8 and (data[0] << 8 | data[1]) % 31 == 0


class _Inflation:
    """One zlib stream fed in slices, its output counted and dropped. Output that is itself a zlib stream (a
    chain of FlateDecode filters, which a reader applies one after the other) is inflated and counted too."""

    def __init__(self, budget: int, depth: int = 0) -> None:
        self.inflater, self.budget, self.depth = zlib.decompressobj(), budget, depth
        self.produced, self.stopped = 0, False
        self.inner: _Inflation | None = None

    @property
    def total(self) -> int:
        return self.produced + (self.inner.total if self.inner else 0)

    @property
    def done(self) -> bool:
        return self.stopped or self.inflater.eof or self.total > self.budget

    def feed(self, data: bytes) -> None:
        pending = data
        try:
            while pending and not self.done:
                out = self.inflater.decompress(pending, min(OUTPUT_SLICE, self.budget - self.total + 1))
                self._pass_on(out)
                self.produced += len(out)
                pending = self.inflater.unconsumed_tail
        except zlib.error:
            self.stopped = True  # not a flate stream (an image, text), or damaged: what it gave so far counts

    def _pass_on(self, out: bytes) -> None:
        if self.produced == 0 and self.depth < MAX_FILTER_CHAIN and _is_zlib_header(out):
            self.inner = _Inflation(self.budget, self.depth + 1)
        if self.inner is not None and not self.inner.done:
            self.inner.feed(out)


def check_page_count(pages: int, limit: int = MAX_PAGES) -> None:
    if pages > limit:
        raise FileCorrupt(f"{pages} pages: more than an invoice file has (at most {limit})")
