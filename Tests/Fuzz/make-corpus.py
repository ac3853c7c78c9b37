#!/usr/bin/env python3
"""Writes the committed seed corpus of the fuzz targets (Docs/FUZZING.md) into Tests/Fuzz/corpus/<target>/.

Each file is one small valid (or deliberately broken) input; libFuzzer mutates from there. Run it again after
changing a target's input format. The frames and http targets take [max read size][options] first, the control
target [max read size] (0: the bytes arrive in one read).
"""
import os
import struct
import zlib

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")
MASK = bytes([0x12, 0x34, 0x56, 0x78])


def frame(opcode, payload=b"", fin=True, masked=True, length_form=None):
    """A client frame; length_form forces the 16-bit (126) or 64-bit (127) length encoding."""
    first = (0x80 if fin else 0) | opcode
    mask_bit = 0x80 if masked else 0
    n = len(payload)
    form = length_form or (125 if n <= 125 else 126 if n <= 0xFFFF else 127)
    if form == 125:
        header = bytes([first, mask_bit | n])
    elif form == 126:
        header = bytes([first, mask_bit | 126]) + struct.pack(">H", n)
    else:
        header = bytes([first, mask_bit | 127]) + struct.pack(">Q", n)
    if not masked:
        return header + payload
    return header + MASK + bytes(b ^ MASK[i % 4] for i, b in enumerate(payload))


def close(code, reason=b""):
    return frame(0x8, struct.pack(">H", code) + reason)


UPGRADE = (
    b"GET /chat?room=1 HTTP/1.1\r\nHost: 127.0.0.1:9501\r\nConnection: Upgrade\r\nPragma: no-cache\r\n"
    b"Cache-Control: no-cache\r\nUser-Agent: Mozilla/5.0 (X11; Linux x86_64) Chrome/120.0.0.0\r\n"
    b"Upgrade: websocket\r\nOrigin: http://127.0.0.1:9501\r\nSec-WebSocket-Version: 13\r\n"
    b"Accept-Encoding: gzip, deflate, br\r\nAccept-Language: en-US,en;q=0.9\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    b"Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\r\n"
)

def raw_deflate(data):
    """permessage-deflate as a client sends it: raw DEFLATE, sync-flushed, the 00 00 FF FF tail cut off."""
    compressor = zlib.compressobj(6, zlib.DEFLATED, -15)
    return (compressor.compress(data) + compressor.flush(zlib.Z_SYNC_FLUSH))[:-4]


SEEDS = {
    "fuzz-frames": {
        # options: bits 0-1 message limit (125, 1000, 64 KiB, 1 MiB), bit 2 echo
        "text-masked": b"\x00\x04" + frame(0x1, b"Hello"),
        "text-utf8-3-reads": b"\x03\x05" + frame(0x1, "h\u00e9llo \u20ac \U0001F600".encode()),
        "binary-16bit-length": b"\x00\x05" + frame(0x2, bytes(range(200))),
        "binary-64bit-length": b"\x00\x05" + frame(0x2, b"0123456789", length_form=127),
        "unmasked": b"\x00\x04" + frame(0x1, b"no mask", masked=False),
        "fragmented-with-ping": b"\x07\x05"
        + frame(0x1, b"Hel", fin=False)
        + frame(0x9, b"ping")
        + frame(0x0, "lo \u00e9".encode()[:-1], fin=False)
        + frame(0x0, "lo \u00e9".encode()[-1:] + b"!"),
        "close-with-code": b"\x00\x04" + frame(0x1, b"bye") + close(1000, b"normal"),
        "close-empty": b"\x00\x00" + frame(0xA, b"pong") + frame(0x8),
        "too-large": b"\x00\x00" + frame(0x2, bytes(200)),
        "reserved-bits": b"\x00\x04" + bytes([0xC1, 0x80]) + MASK,
    },
    "fuzz-http": {
        # options: bit 0 small limits
        "upgrade-message-close": b"\x00\x00" + UPGRADE + frame(0x1, b"Hello") + close(1001),
        "upgrade-in-small-reads": b"\x07\x00" + UPGRADE + frame(0x2, bytes(130)) + frame(0x9) + close(1000),
        "upgrade-refused-path": b"\x00\x00" + UPGRADE.replace(b"/chat?room=1", b"/no-ws"),
        "upgrade-bad-version": b"\x00\x00" + UPGRADE.replace(b"Version: 13", b"Version: 8"),
        "pipelined-gets": b"\x00\x00"
        + b"GET /hello HTTP/1.1\r\nHost: a\r\n\r\n"
        + b"GET /favicon.ico HTTP/1.1\r\nHost: a\r\n\r\n"
        + b"GET /throw HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
        + b"GET /after-close HTTP/1.1\r\n\r\n",
        "chunked-post": b"\x05\x00"
        + b"POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
        + b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
        "post-content-length-small-limits": b"\x00\x01"
        + b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\n"
        + bytes(100),
        "http10": b"\x00\x00" + b"GET / HTTP/1.0\r\n\r\n",
        "garbage": b"\x00\x00" + b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
        # Findings, kept as seeds so every run checks them again (Docs/FUZZING.md).
        "finding-upgrade-then-garbage": b"\x00\x00"
        + UPGRADE.replace(b"Connection: Upgrade", b"Connection: keep-alive")
        + frame(0x2, bytes(130)),
        "finding-upgrade-then-pipelined-get": b"\x00\x00"
        + UPGRADE.replace(b"Connection: Upgrade\r\n", b"")
        + b"GET /favicon.ico HTTP/1.1\r\nHost: a\r\n\r\n",
        "finding-upgrade-with-body": b"\x07\x00"
        + b"GET / HTTP/1.0\r\nUpgrade:websocket\r\nSec-WebSocket-Version:13\r\nSec-WebSocket-Key:d\r\n"
        + b"Transfer-Encoding:d\r\n\r\n",
    },
    # fuzz-http's input format ([max read, unused][options][bytes]); bit 0: small limits.
    "fuzz-http-parser": {
        "pipelined-gets": b"\x00\x00"
        + b"GET /hello HTTP/1.1\r\nHost: a\r\n\r\n"
        + b"HEAD /a?b=c HTTP/1.1\r\nHost: a\r\nUser-Agent: x\r\nAccept: */*\r\n\r\n"
        + b"OPTIONS /o HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"
        + b"DELETE /d HTTP/1.1\r\nhost: a\r\nConnection: close\r\n\r\n",
        "post-echo": b"\x00\x00"
        + b"POST /echo HTTP/1.1\r\nContent-Length: 16\r\nContent-Type: application/octet-stream\r\n"
        + b"Host: 127.0.0.1:9501\r\n\r\n0123456789abcdef"
        + b"PUT /p HTTP/1.1\r\nHost: a\r\ncontent-length: 2\r\nX-Empty:\r\nX-Tab:\t1\r\n\r\nhi",
        "post-small-limits": b"\x00\x01"
        + b"PATCH /p HTTP/1.1\r\nHost: a\r\nContent-Length: 64\r\n\r\n" + bytes(64)
        + b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 65\r\n\r\n" + bytes(65),
        "smuggling": b"\x00\x00"
        + b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"
        + b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        "obs-fold": b"\x00\x00" + b"GET / HTTP/1.1\r\nHost: a\r\nX-A: 1\r\n 2\r\n\r\n",
        "bare-lf": b"\x00\x00" + b"GET / HTTP/1.1\nHost: a\n\n",
    },
    "fuzz-ipc": {
        "connection": bytes([1]) + struct.pack("<Q", 0x1_00_000005),
        "push-inline": bytes([2, 0, 1]) + struct.pack("<Q", 0x1_00_000005) + b"hello",
        "broadcast-inline": bytes([3, 0]) + struct.pack("<Q", 1) + bytes([0x81, 0x02]) + b"hi",
        "disconnect": bytes([4]) + struct.pack("<QQ", 0x1_00_000005, 1000) + b"bye",
        "ready": bytes([6]) + struct.pack("<QQ", 1, 4242),
        "retire": bytes([7]),
        "retired": bytes([8]) + struct.pack("<QQ", 0, 4243),
        "finding-ready-worker-above-int-max": bytes([6]) + struct.pack("<QQ", 1 << 63, 4242),
        "finding-healthy-worker-above-int-max": bytes([10]) + struct.pack("<QQQ", 1 << 63, 4242, 7),
        "health-check": bytes([9]) + struct.pack("<Q", 7),
        "healthy": bytes([10]) + struct.pack("<QQQ", 1, 4242, 7),
        "binding": bytes([24, 1]) + struct.pack("<Q", 0x1_00_000005) + b"alice",
        "unbinding": bytes([24, 0]) + struct.pack("<Q", 0x1_00_000005),
        "user-message": bytes([25, 0]) + struct.pack("<Q", 1) + bytes([3]) + b"bob" + bytes([0x81, 2]) + b"hi",
        "user-push": bytes([26, 0, 1, 5]) + b"alicehello",
        "finding-disconnect-long-reason": bytes([4]) + struct.pack("<QQ", 0x1_00_000005, 1000)
        + b"a" * 122 + "\u00e9t\u00e9".encode(),
    },
    "fuzz-control": {
        "hello": b"\x00hello\n",
        "push": b"\x00push 4294967301 5\nhello",
        "push-in-reads": b"\x02push 4294967301 11\nhello world",
        "disconnect": b"\x00disconnect 4294967301 1000\n",
        "unknown": b"\x00status please\n",
        "finding-push-negative-length": b"\x00push 1 -1\n",
        "reopen-logs": b"\x00reopen-logs\n",
        "disconnect-reserved-code": b"\x00disconnect 4294967301 1005\n",
        "push-user": b"\x00push-user 11 5\nalice smithhello",
        "push-user-overflow": b"\x00push-user 1 9223372036854775807\nab",
    },
    # [method: 0 GET, 1 HEAD, 2 POST, 3 PUT, 4 DELETE, 5 PATCH, 6 OPTIONS, 7 PURGE] then a query string that is
    # also matched as a path.
    "fuzz-query": {
        "form-query": b"\x00a=1&b=two+words&c=%C3%A9&c=&&d&=e&f==g",
        "bad-escapes": b"\x00x=100%&y=%zz&z=%4&w=%FF%FE&v=%%41",
        "user-path": b"\x00/users/7",
        "user-posts-encoded": b"\x00/users/caf%C3%A9/posts/a%2Fb",
        "literal-fallback": b"\x00/users/me/posts/1",
        "static-rest": b"\x00/static/css//site%20v2.css",
        "files-kind-rest": b"\x01/files/img/a/b",
        "method-not-allowed": b"\x05/users/7",
        "any-method": b"\x07/any/x",
        "encoded-literal": b"\x00/caf%c3%a9",
        "too-many-segments": b"\x00/a/b/c/d/e/f/g/h/i",
        "not-utf8": b"\x00/users/%C3%28",
        "empty": b"\x00",
    },
    # [mode] then a Sec-WebSocket-Extensions value (mode bit 0 clear; 0x00 separates header lines), or a
    # compressed message (bit 0 set, bits 1-3 the limit: 0, 1, 125, 1000, 4096, 64 KiB, 1 MiB).
    "fuzz-deflate": {
        "chrome-offer": b"\x00permessage-deflate; client_max_window_bits",
        "window-bits": b"\x00permessage-deflate; server_max_window_bits=10; client_max_window_bits=12",
        "two-offers": b"\x00permessage-deflate; server_max_window_bits=7, permessage-deflate",
        "quoted": b"\x00x-foo; a=\"b\\c\"\x00permessage-deflate; server_max_window_bits=\"9\"",
        "hello": b"\x09\xf2\x48\xcd\xc9\xc9\x07\x00",
        "stored-hello": b"\x05\x00\x05\x00\xfa\xff\x48\x65\x6c\x6c\x6f\x00",
        "zeros-over-limit": b"\x09" + raw_deflate(bytes(4096)),
        "json-under-limit": b"\x0b" + raw_deflate(b'{"id": 1, "symbol": "HIVE", "price": 1000}' * 20),
    },
    # [mode: bits 0-2 method (0-5 POST, 6 GET, 7 PUT), bit 3 query "\n" body, bit 4 Authorization value] then the
    # body, the query and body, or the header value.
    "fuzz-publish": {
        "json-channel": b'\x00{"channel": "news", "data": "h\\u00e9llo \\ud83d\\ude00"}',
        "json-user": b'\x00{"user": "alice", "data": "hi", "extra": [1, {"a": null}]}',
        "json-both": b'\x00{"channel": "a", "user": "b", "data": "x"}',
        "json-data-object": b'\x00{"channel": "news", "data": {"price": 1.5e3, "ok": true}}',
        "json-bad-name": b'\x00{"channel": "no spaces", "data": "x"}',
        "json-over-limit": b'\x00{"channel": "n", "data": "' + b"x" * 300 + b'"}',
        "json-deep": b'\x00{"channel": "n", "data": ' + b"[" * 600 + b"]" * 600 + b"}",
        "json-lone-surrogate": b'\x00{"channel": "n", "data": "\\ud800"}',
        "raw-text": b"\x08channel=news&x=%41\nplain text",
        "raw-binary": b"\x08channel=bin\n\xff\x00\xc3",
        "raw-user": b"\x08user=bob%40example\n{}",
        "raw-two-targets": b"\x08channel=a&channel=b\nx",
        "get": b"\x06{}",
        "auth-ok": b"\x10apikey fuzz-key-0123",
        "auth-case-tabs": b"\x10ApiKey\t \tfuzz-key-012",
        "auth-bearer": b"\x10Bearer fuzz-key-0123",
    },
    # A message on the Redis user channel: "HU" 1 opcode idlength id payload (UserEnvelope), or anything else.
    # HandOverState version 2 (Sources/HiveIPC/HandOverState.swift): fixed fields, path, channels (with a
    # position each when flag bit 1, envelopes, is set), frame leftover, partial message, then the token.
    "fuzz-handover": {
        "plain": struct.pack("<HBBB3xqq", 2, 0, 0, 0, -1, -1) + struct.pack("<H", 1) + b"/" + struct.pack("<H", 0)
        + struct.pack("<II", 0, 0),
        "fragment-and-leftover": struct.pack("<HBBB3xqq", 2, 1, 0, 15, 5_000_000_000, -1) + struct.pack("<H", 5) + b"/echo"
        + struct.pack("<H", 1) + bytes([4]) + b"news" + struct.pack("<I", 3) + bytes([0x81, 0x85, 1])
        + struct.pack("<I", 5) + b"hello",
        "envelopes-positions": struct.pack("<HBBB3xqq", 2, 0, 2, 0, -1, -1) + struct.pack("<H", 1) + b"/"
        + struct.pack("<H", 2) + bytes([4]) + b"news" + bytes([7]) + b"m3k9x2a" + struct.pack("<Q", 41)
        + bytes([5]) + b"sport" + bytes([0]) + struct.pack("<II", 0, 0),
        "token-claims-expiry": struct.pack("<HBBB3xqq", 2, 0, 4 | 8 | 16, 0, -1, -1) + struct.pack("<H", 1) + b"/"
        + struct.pack("<H", 0) + struct.pack("<II", 0, 0) + bytes([5]) + b"alice" + struct.pack("<d", 1.9e9)
        + struct.pack("<H", 2) + bytes([4]) + b"news" + bytes([1]) + b"*",
        "token-no-claim": struct.pack("<HBBB3xqq", 2, 0, 4 | 2, 0, -1, -1) + struct.pack("<H", 1) + b"/"
        + struct.pack("<H", 1) + bytes([4]) + b"news" + bytes([0]) + struct.pack("<II", 0, 0) + bytes([3]) + b"bob",
        "other-version": struct.pack("<H", 1) + bytes(30),
    },
    "fuzz-user-envelope": {
        "text": b"HU\x01\x01\x05alicehello",
        "binary": b"HU\x01\x02\x03bob\x00\xff\x80",
        "longest-id": b"HU\x01\x01\x40" + "\u00e9".encode() * 32 + b"x",
        "id-past-the-end": b"HU\x01\x01\x3calice",
        "text-not-utf8": b"HU\x01\x01\x01a\xc3",
        "control-in-id": b"HU\x01\x01\x02a\nhi",
        "plain-text": b"alice: hello",
    },
    # [max read size][largest bulk string kept] then what Redis sends a subscriber.
    "fuzz-resp": {
        "subscribe-replies": b"\x00\x40*3\r\n$9\r\nsubscribe\r\n$4\r\ntest\r\n:1\r\n"
        + b"*3\r\n$10\r\npsubscribe\r\n$3\r\nt.*\r\n:2\r\n",
        "message-in-reads": b"\x03\x40*3\r\n$7\r\nmessage\r\n$4\r\ntest\r\n$11\r\nhello world\r\n",
        "pmessage": b"\x00\x40*4\r\n$8\r\npmessage\r\n$3\r\nt.*\r\n$3\r\nt.a\r\n$2\r\nhi\r\n",
        "oversized-skipped": b"\x05\x04*3\r\n$7\r\nmessage\r\n$4\r\ntest\r\n$20\r\n" + b"x" * 20 + b"\r\n",
        "auth-ok-and-error": b"\x00\x40+OK\r\n-ERR invalid password\r\n",
        "null-and-empty": b"\x00\x40$-1\r\n*-1\r\n*0\r\n$0\r\n\r\n",
        "nested-arrays": b"\x02\x40*1\r\n*1\r\n*1\r\n:7\r\n",
    },
}

for target, seeds in SEEDS.items():
    directory = os.path.join(ROOT, target)
    os.makedirs(directory, exist_ok=True)
    for name, data in seeds.items():
        with open(os.path.join(directory, name), "wb") as f:
            f.write(data)
    print(f"{target}: {len(seeds)} seeds")
