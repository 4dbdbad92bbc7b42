"""Hostile PDFs for the bounded checks (importable as `hostilekit`): a flate bomb and a file of many pages.

Both are well-formed PDFs (a reader opens them) built in memory in well under a second:
- `flate_bomb_pdf()`: about 4 MB whose page content stream inflates to 4 GiB of spaces. The stream repeats one
  fully flushed deflate segment (each segment restarts the decoder, so repeating it is valid) and ends with the
  right Adler-32, computed by combining the segment's checksum rather than by hashing 4 GiB.
- `many_pages_pdf()`: 10,000 pages sharing one small content stream with a line of text and no totals, so a
  reader looking for the totals page by page would read every one of them.
"""

from __future__ import annotations

import zlib

ADLER_BASE = 65521
SEGMENT_BYTES = 1 << 20  # one flushed deflate segment inflates to 1 MiB of spaces


def _adler32_combine(first: int, second: int, second_length: int) -> int:
    """zlib's adler32_combine: the checksum of A+B from those of A and B and B's length."""
    remainder = second_length % ADLER_BASE
    sum1 = first & 0xFFFF
    sum2 = (remainder * sum1) % ADLER_BASE
    sum1 += (second & 0xFFFF) + ADLER_BASE - 1
    sum2 += ((first >> 16) & 0xFFFF) + ((second >> 16) & 0xFFFF) + ADLER_BASE - remainder
    sum1 %= ADLER_BASE
    sum2 %= ADLER_BASE
    return sum1 | (sum2 << 16)


def _repeated_adler32(chunk_adler: int, chunk_length: int, times: int) -> int:
    """Adler-32 of a chunk repeated `times` times, by doubling (log2(times) combinations)."""
    result, result_length = 1, 0  # the checksum of nothing
    power, power_length = chunk_adler, chunk_length
    while times:
        if times & 1:
            result, result_length = (
                _adler32_combine(result, power, power_length),
                result_length + power_length,
            )
        power, power_length = _adler32_combine(power, power, power_length), power_length * 2
        times >>= 1
    return result


def bomb_stream(inflated_bytes: int) -> bytes:
    """A zlib stream (FlateDecode) of `inflated_bytes` spaces, rounded down to whole MiB."""
    chunk = b" " * SEGMENT_BYTES
    deflate = zlib.compressobj(9, zlib.DEFLATED, -15)
    segment = deflate.compress(chunk) + deflate.flush(zlib.Z_FULL_FLUSH)
    times = inflated_bytes // SEGMENT_BYTES
    ending = zlib.compressobj(9, zlib.DEFLATED, -15).flush(zlib.Z_FINISH)  # an empty final block
    checksum = _repeated_adler32(zlib.adler32(chunk), SEGMENT_BYTES, times)
    return b"\x78\xda" + segment * times + ending + checksum.to_bytes(4, "big")


def _pdf(objects: list[bytes]) -> bytes:
    """A PDF of the given objects (numbered from 1, the first being the catalog) with a correct xref table."""
    out, offsets = bytearray(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n"), []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


def _stream(data: bytes, flate: bool = False) -> bytes:
    entries = b"/Length %d" % len(data) + (b" /Filter /FlateDecode" if flate else b"")
    return b"<< " + entries + b" >>\nstream\n" + data + b"\nendstream"


FONT = b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"
PAGE_TEXT = b"BT /F1 12 Tf 72 720 Td (Invoice 00000001 page) Tj ET"


def flate_bomb_pdf(inflated_bytes: int = 4 << 30) -> bytes:
    """One page whose content stream inflates to `inflated_bytes` (4 GiB: a file of about 4 MB)."""
    return _pdf(
        [
            b"<< /Type /Catalog /Pages 2 0 R >>",
            b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R /Resources << /Font << /F1 5 0 R >> >> >>",
            _stream(bomb_stream(inflated_bytes), flate=True),
            FONT,
        ]
    )


def many_pages_pdf(pages: int = 10_000) -> bytes:
    """`pages` pages, each drawing the same line of text (no 价税合计 anywhere)."""
    first_page = 5
    kids = b" ".join(b"%d 0 R" % (first_page + index) for index in range(pages))
    page = b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 3 0 R /Resources << /Font << /F1 4 0 R >> >> >>"
    return _pdf(
        [
            b"<< /Type /Catalog /Pages 2 0 R >>",
            b"<< /Type /Pages /Kids [" + kids + b"] /Count %d >>" % pages,
            _stream(PAGE_TEXT),
            FONT,
            *([page] * pages),
        ]
    )
