"""SASL PLAIN message parsing (RFC 4616)."""

from __future__ import annotations

import pytest
from casper.sasl import Failure, parse_plain

PLAIN_CASES: list[tuple[bytes, tuple[str, str, str] | Failure]] = [
    (b"\0tim\0tanstaaftanstaaf", ("", "tim", "tanstaaftanstaaf")),  # RFC 4616 §4
    (b"Ursel\0Kurt\0xipj3plmq", ("Ursel", "Kurt", "xipj3plmq")),
    (b"juliet@example.com\0juliet\0r0m30", ("juliet@example.com", "juliet", "r0m30")),
    (b"\0j\xc3\xbcrgen\0p\xc3\xa4ss word", ("", "jürgen", "päss word")),
    (b"\0a\0,=@/", ("", "a", ",=@/")),
    (b"", Failure("malformed-request")),
    (b"\0", Failure("malformed-request")),
    (b"\0\0", Failure("malformed-request")),
    (b"\0tim\0", Failure("malformed-request")),
    (b"\0\0password", Failure("malformed-request")),
    (b"tim\0password", Failure("malformed-request")),
    (b"timpassword", Failure("malformed-request")),
    (b"\0tim\0pass\0word", Failure("malformed-request")),
    (b"\0tim\0password\0", Failure("malformed-request")),
    (b"\0\0tim\0password", Failure("malformed-request")),
    (b"\0tim\0pass\xffword", Failure("malformed-request")),
    (b"\0t\xc3m\0password", Failure("malformed-request")),
    (b"\xff\0tim\0password", Failure("malformed-request")),
]


@pytest.mark.parametrize(("data", "expected"), PLAIN_CASES)
def test_parse_plain(data: bytes, expected: tuple[str, str, str] | Failure) -> None:
    result = parse_plain(data)
    if isinstance(expected, Failure):
        assert isinstance(result, Failure)
        assert result.condition == expected.condition
    else:
        assert result == expected
