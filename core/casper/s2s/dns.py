"""Sans-IO DNS messages for SRV look-ups (RFC 1035 §4, RFC 2782): build a query, read an answer.

Only what finding a server needs: one question, answers of type SRV, name compression. No
I/O, no trio; :mod:`casper.s2s.resolve` sends the bytes.
"""

from __future__ import annotations

import random
import struct
from dataclasses import dataclass

SRV = 33
A = 1
IN = 1
NXDOMAIN = 3


class DNSFormatError(ValueError):
    """The answer is not a DNS message we can read."""


@dataclass(frozen=True, order=True)
class SRVRecord:
    priority: int
    weight: int
    port: int
    target: str  #: without the trailing dot; "." means "no such service here"


def encode_name(name: str) -> bytes:
    out = bytearray()
    for label in name.rstrip(".").split("."):
        raw = label.encode("idna") if not label.isascii() else label.encode()
        if not 0 < len(raw) < 64:
            raise ValueError(f"bad DNS label in {name!r}")
        out += bytes([len(raw)]) + raw
    return bytes(out + b"\0")


def build_query(query_id: int, name: str, qtype: int = SRV) -> bytes:
    """A recursive query for ``name`` (header: id, RD set, one question)."""
    header = struct.pack("!HHHHHH", query_id, 0x0100, 1, 0, 0, 0)
    return header + encode_name(name) + struct.pack("!HH", qtype, IN)


def read_name(message: bytes, offset: int) -> tuple[str, int]:
    """Read a possibly compressed name at ``offset``; return it and the offset after it."""
    labels: list[str] = []
    end: int | None = None
    for _ in range(128):  # bounds pointer loops
        if offset >= len(message):
            raise DNSFormatError("name runs past the end")
        length = message[offset]
        if length & 0xC0 == 0xC0:
            if offset + 1 >= len(message):
                raise DNSFormatError("truncated pointer")
            if end is None:
                end = offset + 2
            offset = ((length & 0x3F) << 8) | message[offset + 1]
            continue
        if length == 0:
            return ".".join(labels) or ".", end if end is not None else offset + 1
        label = message[offset + 1 : offset + 1 + length]
        if len(label) != length:
            raise DNSFormatError("truncated label")
        labels.append(label.decode("ascii", "replace"))
        offset += 1 + length
    raise DNSFormatError("name compression loop")


def parse_srv_answer(message: bytes, query_id: int) -> list[SRVRecord] | None:
    """SRV records in an answer to query ``query_id``; ``None`` if it answers another query.

    NXDOMAIN and empty answers give ``[]``.
    :raises DNSFormatError: malformed message, or a server failure.
    """
    if len(message) < 12:
        raise DNSFormatError("message shorter than a header")
    ident, flags, qdcount, ancount, _, _ = struct.unpack("!HHHHHH", message[:12])
    if ident != query_id or not flags & 0x8000:
        return None
    rcode = flags & 0xF
    if rcode == NXDOMAIN:
        return []
    if rcode != 0:
        raise DNSFormatError(f"server answered with rcode {rcode}")
    offset = 12
    for _ in range(qdcount):
        _, offset = read_name(message, offset)
        offset += 4
    records = []
    for _ in range(ancount):
        _, offset = read_name(message, offset)
        if offset + 10 > len(message):
            raise DNSFormatError("truncated resource record")
        rtype, _, _, rdlength = struct.unpack("!HHIH", message[offset : offset + 10])
        offset += 10
        rdata_end = offset + rdlength
        if rdata_end > len(message):
            raise DNSFormatError("truncated rdata")
        if rtype == SRV and rdlength >= 7:
            priority, weight, port = struct.unpack("!HHH", message[offset : offset + 6])
            target, _ = read_name(message, offset + 6)
            records.append(SRVRecord(priority, weight, port, target.rstrip(".") or "."))
        offset = rdata_end
    return records


def order_srv(records: list[SRVRecord], rng: random.Random | None = None) -> list[SRVRecord]:
    """RFC 2782 order: by priority, then weighted random within a priority."""
    rng = rng or random.Random()
    ordered: list[SRVRecord] = []
    for priority in sorted({r.priority for r in records}):
        group = [r for r in records if r.priority == priority]
        while group:
            total = sum(r.weight for r in group)
            pick = rng.uniform(0, total) if total else 0
            running = 0
            for record in group:
                running += record.weight
                if running >= pick:
                    break
            ordered.append(record)
            group.remove(record)
    return ordered
