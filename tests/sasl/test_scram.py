"""SCRAM-SHA-1/-256 (RFC 5802, RFC 7677): published vectors, round trips and every failure."""

from __future__ import annotations

import ast
import base64
import dataclasses
import importlib.util
from collections.abc import Callable
from pathlib import Path

import pytest
from casper.errors import LocalProtocolError
from casper.sasl import (
    MECHANISMS,
    Challenge,
    Failure,
    NeedCredentials,
    ScramClient,
    ScramCredentials,
    ScramServer,
    Success,
    derive_credentials,
    saslprep,
    scram_client,
    verify_password,
)


@dataclasses.dataclass(frozen=True)
class Vector:
    mechanism: str
    salt: str
    client_nonce: str
    server_nonce: str
    client_first: bytes
    server_first: bytes
    client_final: bytes
    server_final: bytes


VECTORS = [
    Vector(  # RFC 5802 §5
        "SCRAM-SHA-1",
        "QSXCR+Q6sek8bf92",
        "fyko+d2lbbFgONRv9qkxdawL",
        "3rfcNHYJY1ZVvWVs7j",
        b"n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL",
        b"r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096",
        b"c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=",
        b"v=rmF9pqV8S7suAoZWja4dJRkFsKQ=",
    ),
    Vector(  # RFC 7677 §3
        "SCRAM-SHA-256",
        "W22ZaJ0SNY7soEsUEjb6gQ==",
        "rOprNGfwEbeRWgbNEkqO",
        "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0",
        b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO",
        b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
        b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
        b"p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
        b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=",
    ),
]
IDS = [v.mechanism for v in VECTORS]


def _creds(vector: Vector, password: str = "pencil") -> ScramCredentials:
    salt = base64.b64decode(vector.salt)
    return derive_credentials(password, salt=salt)[vector.mechanism]


def _server_at_final(vector: Vector, creds: ScramCredentials | None = None) -> ScramServer:
    server = ScramServer(vector.mechanism, nonce=vector.server_nonce)
    assert server.start(vector.client_first) == NeedCredentials("user")
    assert server.credentials(creds or _creds(vector)) == Challenge(vector.server_first)
    return server


# -- published test vectors --------------------------------------------------------------------


@pytest.mark.parametrize("vector", VECTORS, ids=IDS)
def test_server_reproduces_rfc_vector(vector: Vector) -> None:
    server = _server_at_final(vector)
    assert server.respond(vector.client_final) == Success("user", vector.server_final)


@pytest.mark.parametrize("vector", VECTORS, ids=IDS)
def test_client_reproduces_rfc_vector(vector: Vector) -> None:
    client = ScramClient(vector.mechanism, "user", "pencil", nonce=vector.client_nonce)
    assert client.first() == vector.client_first
    assert client.final(vector.server_first) == vector.client_final
    assert client.verify(vector.server_final) is True


@pytest.mark.parametrize("vector", VECTORS, ids=IDS)
def test_server_rejects_vector_with_wrong_password(vector: Vector) -> None:
    server = _server_at_final(vector, _creds(vector, "pencil2"))
    assert server.respond(vector.client_final) == Failure("not-authorized")


# -- credentials -------------------------------------------------------------------------------


def test_derive_credentials_covers_every_mechanism() -> None:
    creds = derive_credentials("pencil", iterations=10, salt=b"salt")
    assert list(creds) == list(MECHANISMS) == ["SCRAM-SHA-256", "SCRAM-SHA-1"]
    assert [len(c.stored_key) for c in creds.values()] == [32, 20]
    assert {(c.salt, c.iterations) for c in creds.values()} == {(b"salt", 10)}
    assert creds["SCRAM-SHA-1"].mechanism == "SCRAM-SHA-1"


def test_derive_credentials_random_salt() -> None:
    first, second = derive_credentials("pencil"), derive_credentials("pencil")
    assert len(first["SCRAM-SHA-1"].salt) == 16
    assert first["SCRAM-SHA-1"].salt != second["SCRAM-SHA-1"].salt
    assert first["SCRAM-SHA-1"].iterations == 4096


def test_credentials_repr_hides_keys() -> None:
    creds = derive_credentials("pencil", iterations=1, salt=b"s")["SCRAM-SHA-1"]
    assert "stored_key" not in repr(creds) and "server_key" not in repr(creds)


@pytest.mark.parametrize(
    ("kwargs", "password"),
    [({"iterations": 0}, "pencil"), ({}, ""), ({}, "pen\x00cil"), ({}, "\u00ad")],
)
def test_derive_credentials_rejects(kwargs: dict[str, int], password: str) -> None:
    with pytest.raises(ValueError):
        derive_credentials(password, **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("password", "candidate", "ok"),
    [("pencil", "pencil", True), ("pencil", "Pencil", False), ("pencil", "pencil ", False),
     ("I\u00adX", "IX", True), ("\u2168", "IX", True), ("a\u00a0b", "a b", True),
     ("pencil", "", False), ("pencil", "pen\x07cil", False)],
)  # fmt: skip
def test_verify_password(password: str, candidate: str, ok: bool) -> None:
    for creds in derive_credentials(password, iterations=16).values():
        assert verify_password(creds, candidate) is ok


# RFC 4013 §3 examples, except the bidi one (the approximation does no bidi check)
@pytest.mark.parametrize(
    ("text", "prepared"),
    [("I\u00adX", "IX"), ("user", "user"), ("USER", "USER"), ("\u00aa", "a"), ("\u2168", "IX"),
     ("a\u2003b", "a b"), ("\ufb01", "fi"), ("a\ufeffb", "ab")],
)  # fmt: skip
def test_saslprep(text: str, prepared: str) -> None:
    assert saslprep(text) == prepared


@pytest.mark.parametrize("text", ["\u0007", "", "\u00ad", "a\ue000", "a\ud800", "a\x7f"])
def test_saslprep_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        saslprep(text)


@pytest.mark.parametrize(
    "fields",
    [{"mechanism": "SCRAM-MD5"}, {"iterations": 0}, {"salt": b""}, {"stored_key": b"short"},
     {"server_key": b"x" * 32}],
)  # fmt: skip
def test_credentials_validate(fields: dict[str, object]) -> None:
    good = derive_credentials("pencil", iterations=1, salt=b"s")["SCRAM-SHA-1"]
    with pytest.raises(ValueError):
        dataclasses.replace(good, **fields)  # type: ignore[arg-type]


# -- round trips ---------------------------------------------------------------------------------


def _exchange(
    client: ScramClient, server: ScramServer, creds: ScramCredentials | None
) -> tuple[Success | Failure, ScramClient]:
    start = server.start(client.first())
    assert isinstance(start, NeedCredentials)
    challenge = server.credentials(creds)
    return server.respond(client.final(challenge.data)), client


ROUND_TRIPS: list[tuple[str, str, dict[str, object]]] = [
    ("juliet", "s3cret", {}),
    ("a,b=c", "pass,word=", {}),
    ("jürgen", "pässwörd\u00a0x", {}),
    ("juliet", "s3cret", {"cb_flag": "y"}),
    ("juliet", "s3cret", {"authzid": "juliet"}),
    ("juliet", "s3cret", {"authzid": "juliet@example.com"}),
]


@pytest.mark.parametrize("mechanism", MECHANISMS)
@pytest.mark.parametrize(("username", "password", "kwargs"), ROUND_TRIPS)
def test_round_trip(mechanism: str, username: str, password: str, kwargs: dict[str, str]) -> None:
    creds = derive_credentials(password, iterations=64)[mechanism]
    client = ScramClient(mechanism, username, password, **kwargs)
    server = ScramServer(mechanism, domain="example.com")
    result, client = _exchange(client, server, creds)
    assert isinstance(result, Success)
    assert result.username == username
    assert result.additional_data is not None
    assert client.verify(result.additional_data) is True


@pytest.mark.parametrize("mechanism", MECHANISMS)
def test_a_key_cache_skips_pbkdf2_for_the_same_salt_and_still_authenticates(
    mechanism: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    derivations: list[bytes] = []
    real = scram_client._client_key

    def counting(hash_name: str, password: str, salt: bytes, iterations: int):
        derivations.append(salt)
        return real(hash_name, password, salt, iterations)

    monkeypatch.setattr(scram_client, "_client_key", counting)
    cache: scram_client.ScramKeyCache = {}
    creds = derive_credentials("pencil", iterations=64)[mechanism]
    other_salt = derive_credentials("pencil", iterations=64)[mechanism]  # a new random salt
    for stored in (creds, creds, other_salt, creds):
        client = ScramClient(mechanism, "user", "pencil", key_cache=cache)
        result, client = _exchange(client, ScramServer(mechanism), stored)
        assert isinstance(result, Success) and result.additional_data is not None
        assert client.verify(result.additional_data)
    assert derivations == [creds.salt, other_salt.salt]


@pytest.mark.parametrize("mechanism", MECHANISMS)
def test_a_key_cache_does_not_let_a_wrong_password_through(mechanism: str) -> None:
    cache: scram_client.ScramKeyCache = {}
    creds = derive_credentials("right", iterations=64)[mechanism]
    right = ScramClient(mechanism, "juliet", "right", key_cache=cache)
    assert isinstance(_exchange(right, ScramServer(mechanism), creds)[0], Success)
    wrong = ScramClient(mechanism, "juliet", "wrong", key_cache=cache)
    assert _exchange(wrong, ScramServer(mechanism), creds)[0] == Failure("not-authorized")


@pytest.mark.parametrize("mechanism", MECHANISMS)
def test_wrong_password(mechanism: str) -> None:
    creds = derive_credentials("right", iterations=64)[mechanism]
    client = ScramClient(mechanism, "juliet", "wrong")
    assert _exchange(client, ScramServer(mechanism), creds)[0] == Failure("not-authorized")


@pytest.mark.parametrize("mechanism", MECHANISMS)
def test_unknown_user_gets_a_believable_challenge(mechanism: str) -> None:
    key = b"server-wide secret"

    def challenge(username: str) -> dict[str, str]:
        server = ScramServer(mechanism, fake_key=key, default_iterations=8192)
        server.start(ScramClient(mechanism, username, "x").first())
        data = server.credentials(None).data.decode()
        return dict(item.split("=", 1) for item in data.split(","))

    first, again, other = challenge("ghost"), challenge("ghost"), challenge("phantom")
    assert first["i"] == "8192"
    assert len(base64.b64decode(first["s"])) == 16  # as long as a real salt
    assert first["s"] == again["s"]  # stable per user, like a stored salt
    assert first["s"] != other["s"]
    assert first["r"] != again["r"]


@pytest.mark.parametrize("mechanism", MECHANISMS)
def test_unknown_user_fails_at_the_end(mechanism: str) -> None:
    client = ScramClient(mechanism, "ghost", "anything")
    assert _exchange(client, ScramServer(mechanism), None)[0] == Failure("not-authorized")


def test_credentials_for_another_mechanism_are_a_caller_bug() -> None:
    server = ScramServer("SCRAM-SHA-256")
    server.start(b"n,,n=user,r=abc")
    with pytest.raises(ValueError):
        server.credentials(derive_credentials("pencil", iterations=1)["SCRAM-SHA-1"])


# -- malformed and hostile messages --------------------------------------------------------------

CLIENT_FIRST_CASES: list[tuple[bytes, NeedCredentials | Failure]] = [
    (b"n,,n=user,r=abc", NeedCredentials("user")),
    (b"y,,n=user,r=abc", NeedCredentials("user")),
    (b"n,,n=user,r=abc,x=extension", NeedCredentials("user")),
    (b"n,,n=a=2Cb=3Dc,r=abc", NeedCredentials("a,b=c")),
    (b"n,,n=j\xc3\xbcrgen,r=abc", NeedCredentials("jürgen")),
    (b"n,a=user,n=user,r=abc", NeedCredentials("user")),
    (b"n,a=admin,n=user,r=abc", Failure("invalid-authzid")),
    (b"n,a=user@example.com,n=user,r=abc", Failure("invalid-authzid")),  # no domain given
    (b"p=tls-unique,,n=user,r=abc", Failure("malformed-request")),
    (b"", Failure("malformed-request")),
    (b"n,,", Failure("malformed-request")),
    (b"n=user,r=abc", Failure("malformed-request")),
    (b"x,,n=user,r=abc", Failure("malformed-request")),
    (b"N,,n=user,r=abc", Failure("malformed-request")),
    (b"n,a=,n=user,r=abc", Failure("malformed-request")),
    (b"n,b=user,n=user,r=abc", Failure("malformed-request")),
    (b"n,,m=ext,n=user,r=abc", Failure("malformed-request")),
    (b"n,,r=abc,n=user", Failure("malformed-request")),
    (b"n,,n=user", Failure("malformed-request")),
    (b"n,,n=,r=abc", Failure("malformed-request")),
    (b"n,,n=user,r=", Failure("malformed-request")),
    (b"n,,user,r=abc", Failure("malformed-request")),
    (b"n,,n=us=2Xer,r=abc", Failure("malformed-request")),
    (b"n,,n=user=,r=abc", Failure("malformed-request")),
    (b"n,,n=us\x00er,r=abc", Failure("malformed-request")),
    (b"n,,n=user,r=a c", Failure("malformed-request")),
    (b"n,,n=user,r=abc\x00", Failure("malformed-request")),
    (b"n,,n=user,r=ab\xc3\xa9", Failure("malformed-request")),
    (b"n,,n=user,r=abc,", Failure("malformed-request")),
    (b"n,,n=user,r=abc,x", Failure("malformed-request")),
    (b"n,,n=user,r=abc,1=x", Failure("malformed-request")),
    (b"n,,n=user,r=abc,x=", Failure("malformed-request")),
    (b"n,,n=\xff,r=abc", Failure("malformed-request")),
    (b"n,,n=user,r=" + b"x" * 512, NeedCredentials("user")),
    (b"n,,n=user,r=" + b"x" * 513, Failure("malformed-request")),  # the server would echo it
]


@pytest.mark.parametrize(("message", "expected"), CLIENT_FIRST_CASES)
def test_start(message: bytes, expected: NeedCredentials | Failure) -> None:
    result = ScramServer("SCRAM-SHA-1").start(message)
    if isinstance(expected, Failure):
        assert isinstance(result, Failure)
        assert result.condition == expected.condition
    else:
        assert result == expected


def test_authzid_bare_jid_accepted_only_for_our_domain() -> None:
    message = b"n,a=user@example.com,n=user,r=abc"
    assert ScramServer("SCRAM-SHA-1", domain="example.com").start(message) == NeedCredentials(
        "user"
    )
    assert ScramServer("SCRAM-SHA-1", domain="example.org").start(message) == Failure(
        "invalid-authzid"
    )


SHA1 = VECTORS[0]
NONCE = b"fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j"
PROOF = b"p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts="
CLIENT_FINAL_CASES: list[tuple[bytes, str]] = [
    (b"", "malformed-request"),
    (b"c=biws,r=" + NONCE, "malformed-request"),
    (b"c=biws," + PROOF, "malformed-request"),
    (b"r=" + NONCE + b",c=biws," + PROOF, "malformed-request"),
    (b"c=biws,r=" + NONCE + b"," + PROOF + b",", "malformed-request"),
    (b"c=biws,r=" + NONCE + b"," + PROOF + b",x=y", "malformed-request"),
    (b"c=biws,r=" + NONCE + b",p=not*base64", "malformed-request"),
    (b"c=biws,r=" + NONCE + b",p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts", "malformed-request"),  # padding
    (b"c=biws,r=" + NONCE + b",p=AAAA", "malformed-request"),  # wrong length
    (b"c=biws,r=" + NONCE + b",p=", "malformed-request"),
    (b"c=b!ws,r=" + NONCE + b"," + PROOF, "malformed-request"),
    (b"c=,r=" + NONCE + b"," + PROOF, "malformed-request"),
    (b"c=biws,r=" + NONCE + b",,\xff" + PROOF, "malformed-request"),
    (b"c=biws,r=" + NONCE + b"\xff," + PROOF, "malformed-request"),
    (b"c=biws,r=,\x00" + PROOF, "malformed-request"),
    # well-formed but wrong: nonce, channel-binding echo, proof
    (b"c=biws,r=fyko+d2lbbFgONRv9qkxdawL," + PROOF, "not-authorized"),
    (b"c=biws,r=" + NONCE + b"x," + PROOF, "not-authorized"),
    (b"c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7J," + PROOF, "not-authorized"),
    (b"c=eSws,r=" + NONCE + b"," + PROOF, "not-authorized"),
    (b"c=biwsAA==,r=" + NONCE + b"," + PROOF, "not-authorized"),
    (b"c=biws,r=" + NONCE + b",p=" + base64.b64encode(b"\0" * 20), "not-authorized"),
    (b"c=biws,r=" + NONCE + b",x=ext," + PROOF, "not-authorized"),  # proof covers x=ext
]


@pytest.mark.parametrize(("message", "condition"), CLIENT_FINAL_CASES)
def test_respond_rejects(message: bytes, condition: str) -> None:
    result = _server_at_final(SHA1).respond(message)
    assert isinstance(result, Failure)
    assert result.condition == condition


@pytest.mark.parametrize("mechanism", MECHANISMS)
def test_channel_binding_downgrade_is_detected(mechanism: str) -> None:
    # The client says "y" (it supports channel binding); an attacker rewrites it to "n".
    # The proof does not cover the GS2 header, only the c= echo does.
    creds = derive_credentials("pencil", iterations=64)[mechanism]
    client = ScramClient(mechanism, "user", "pencil", cb_flag="y")
    server = ScramServer(mechanism)
    first = client.first()
    assert first.startswith(b"y,,")
    assert server.start(b"n" + first[1:]) == NeedCredentials("user")
    challenge = server.credentials(creds)
    assert server.respond(client.final(challenge.data)) == Failure("not-authorized")


# -- the client ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "server_first",
    [b"", b"r=fyko,s=QSXCR+Q6sek8bf92,i=4096", b"r=abc" + NONCE + b",s=QSXCR+Q6sek8bf92,i=4096",
     b"r=fyko+d2lbbFgONRv9qkxdawL,s=QSXCR+Q6sek8bf92,i=4096",
     b"r=" + NONCE + b",s=QSXCR+Q6sek8bf92", b"r=" + NONCE + b",s=,i=4096",
     b"r=" + NONCE + b",s=QSXCR+Q6sek8bf92,i=0", b"r=" + NONCE + b",s=QSXCR+Q6sek8bf92,i=-1",
     b"r=" + NONCE + b",s=QSXCR+Q6sek8bf92,i=x", b"r=" + NONCE + b",s=!!!!,i=4096",
     b"m=ext,r=" + NONCE + b",s=QSXCR+Q6sek8bf92,i=4096",
     b"r=" + NONCE + b",s=QSXCR+Q6sek8bf92,i=4096,", b"\xff"],
)  # fmt: skip
def test_client_rejects_server_first(server_first: bytes) -> None:
    client = ScramClient("SCRAM-SHA-1", "user", "pencil", nonce=SHA1.client_nonce)
    client.first()
    with pytest.raises(ValueError):
        client.final(server_first)


def test_client_accepts_server_first_extensions() -> None:
    client = ScramClient("SCRAM-SHA-1", "user", "pencil", nonce=SHA1.client_nonce)
    client.first()
    assert client.final(SHA1.server_first + b",x=ext").startswith(b"c=biws,r=" + NONCE)


@pytest.mark.parametrize(
    "server_final",
    [b"v=rmF9pqV8S7suAoZWja4dJRkFsKQ", b"v=AAAA", b"e=invalid-proof", b"", b"v=", b"\xff",
     b"x=rmF9pqV8S7suAoZWja4dJRkFsKQ="],
)  # fmt: skip
def test_client_verify_rejects(server_final: bytes) -> None:
    client = ScramClient("SCRAM-SHA-1", "user", "pencil", nonce=SHA1.client_nonce)
    client.first()
    client.final(SHA1.server_first)
    assert client.verify(server_final) is False


@pytest.mark.parametrize(
    ("args", "kwargs"),
    [(("SCRAM-MD5", "u", "p"), {}), (("SCRAM-SHA-1", "u", "p\x00"), {}),
     (("SCRAM-SHA-1", "u", "p"), {"nonce": "a,b"}), (("SCRAM-SHA-1", "u", "p"), {"nonce": ""}),
     (("SCRAM-SHA-1", "u", "p"), {"cb_flag": "p"})],
)  # fmt: skip
def test_client_constructor_rejects(args: tuple[str, str, str], kwargs: dict[str, str]) -> None:
    with pytest.raises(ValueError):
        ScramClient(*args, **kwargs)


@pytest.mark.parametrize("kwargs", [{"nonce": "a,b"}, {"nonce": "a b"}, {"default_iterations": 0}])
def test_server_constructor_rejects(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        ScramServer("SCRAM-SHA-1", **kwargs)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        ScramServer("PLAIN")


# -- call order ------------------------------------------------------------------------------------


def _server_calls(server: ScramServer) -> dict[str, Callable[[], object]]:
    creds = _creds(SHA1)
    return {
        "start": lambda: server.start(SHA1.client_first),
        "credentials": lambda: server.credentials(creds),
        "respond": lambda: server.respond(SHA1.client_final),
    }


# steps taken first -> the step that must then raise
SERVER_ORDER_CASES: list[tuple[list[str], str]] = [
    ([], "credentials"),
    ([], "respond"),
    (["start"], "start"),
    (["start"], "respond"),
    (["start", "credentials"], "start"),
    (["start", "credentials"], "credentials"),
    (["start", "credentials", "respond"], "respond"),
    (["start", "credentials", "respond"], "start"),
]


@pytest.mark.parametrize(("done", "illegal"), SERVER_ORDER_CASES)
def test_server_call_order(done: list[str], illegal: str) -> None:
    server = ScramServer(SHA1.mechanism, nonce=SHA1.server_nonce)
    calls = _server_calls(server)
    for step in done:
        assert not isinstance(calls[step](), Failure)
    with pytest.raises(LocalProtocolError, match=illegal):
        calls[illegal]()


@pytest.mark.parametrize("illegal", ["start", "credentials", "respond"])
def test_server_is_finished_after_a_failure(illegal: str) -> None:
    server = ScramServer("SCRAM-SHA-1")
    assert isinstance(server.start(b"garbage"), Failure)
    with pytest.raises(LocalProtocolError):
        _server_calls(server)[illegal]()


def test_client_call_order() -> None:
    client = ScramClient("SCRAM-SHA-1", "user", "pencil", nonce=SHA1.client_nonce)
    with pytest.raises(LocalProtocolError):
        client.final(SHA1.server_first)
    with pytest.raises(LocalProtocolError):
        client.verify(SHA1.server_final)
    client.first()
    with pytest.raises(LocalProtocolError):
        client.first()
    client.final(SHA1.server_first)
    assert client.verify(SHA1.server_final) is True
    with pytest.raises(LocalProtocolError):
        client.verify(SHA1.server_final)


# -- step values and sans-IO -----------------------------------------------------------------------


def test_failure_conditions_are_checked() -> None:
    assert Failure("not-authorized").text is None
    with pytest.raises(ValueError):
        Failure("bad-password")


def test_step_values_are_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        Success("user").username = "admin"  # type: ignore[misc]
    assert Success("user").additional_data is None


SASL_MODULES = [
    "casper.sasl",
    "casper.sasl.steps",
    "casper.sasl.scram",
    "casper.sasl.scram_client",
    "casper.sasl.plain",
]


@pytest.mark.parametrize("module", SASL_MODULES)
def test_sasl_modules_are_sans_io(module: str) -> None:
    spec = importlib.util.find_spec(module)
    assert spec is not None and spec.origin is not None
    tree = ast.parse(Path(spec.origin).read_text(encoding="utf-8"))
    imported: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module.split(".")[0])
    assert not imported & {"trio", "socket", "asyncio", "ssl"}
