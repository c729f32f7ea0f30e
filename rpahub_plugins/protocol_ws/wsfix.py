"""A thin repair of gevent-websocket 0.10 (2017), applied once per process.

* Unmasking: the library XORs every client byte in a Python loop (about 1.5 ms of CPU
  for a 5 KB ``ReportLogs`` frame); here it is done by wsaccel's C masker.
* UTF-8: the library validates every text frame, then the whole message again; the
  final ``bytes.decode`` validates already, in C, so the Python passes are dropped.
* Size: the library reads any frame length a client announces into memory; frames and
  messages larger than the cap are refused with close code 1009 before reading them.
* Close: the library sends the reason without the status code (RFC 6455 5.5.1 puts a
  2-byte code first), so clients read garbage as the code.

``tests/test_protocol_ws.py::test_gevent_websocket_repairs_hold`` fails if an upgrade
of gevent-websocket makes any of this stop applying.
"""

from __future__ import annotations

import struct

from geventwebsocket import websocket as gws
from geventwebsocket.exceptions import ProtocolError, WebSocketError
from wsaccel.xormask import XorMaskerSimple

DEFAULT_MAX_BYTES = 1 << 20
APPLIED = False


class MessageTooBig(ProtocolError):
    pass


def unmask(self, payload):
    return XorMaskerSimple(bytes(self.mask)).process(bytes(payload))


def read_frame(self):
    header = gws.Header.decode_header(self.stream)
    if header.flags:
        raise ProtocolError("reserved bits set")
    if header.length > self.max_message_bytes:
        raise MessageTooBig(f"frame of {header.length} bytes")
    if not header.length:
        return header, b""
    try:
        payload = self.raw_read(header.length)
    except Exception:
        payload = b""
    if len(payload) != header.length:
        raise WebSocketError("Unexpected EOF reading frame payload")
    if header.mask:
        payload = header.unmask_payload(payload)
    return header, payload


def read_message(self):
    opcode = None
    message = bytearray()
    while True:
        header, payload = self.read_frame()
        f_opcode = header.opcode
        if f_opcode in (self.OPCODE_TEXT, self.OPCODE_BINARY):
            if opcode:
                raise ProtocolError("new message inside a fragmented one")
            opcode = f_opcode
        elif f_opcode == self.OPCODE_CONTINUATION:
            if not opcode:
                raise ProtocolError("continuation without a message")
        elif f_opcode == self.OPCODE_PING:
            self.handle_ping(header, payload)
            continue
        elif f_opcode == self.OPCODE_PONG:
            self.handle_pong(header, payload)
            continue
        elif f_opcode == self.OPCODE_CLOSE:
            self.handle_close(header, payload)
            return None
        else:
            raise ProtocolError(f"unexpected opcode {f_opcode}")
        message += payload
        if len(message) > self.max_message_bytes:
            raise MessageTooBig(f"message over {self.max_message_bytes} bytes")
        if header.fin:
            break
    if opcode == self.OPCODE_TEXT:
        return bytes(message).decode("utf-8")  # raises UnicodeDecodeError (close 1007)
    return bytes(message)


def receive(self):
    if self.closed:
        raise WebSocketError("already closed")
    try:
        return self.read_message()
    except MessageTooBig:
        self.close(1009, b"message too big")
    except UnicodeError:
        self.close(1007)
    except ProtocolError:
        self.close(1002)
    except OSError:
        self.close()
    return None


def close(self, code=1000, message=b""):
    if self.closed:
        return
    if isinstance(message, str):
        message = message.encode("utf-8")
    try:
        self.send_frame(struct.pack("!H", code) + (message or b"")[:123], opcode=self.OPCODE_CLOSE)
    except WebSocketError:
        pass  # the peer is gone: nothing to tell it
    finally:
        self.closed = True
        self.stream = None
        self.raw_write = None
        self.raw_read = None
        self.environ = None


def apply(max_message_bytes: int = DEFAULT_MAX_BYTES) -> None:
    global APPLIED
    gws.Header.mask_payload = unmask
    gws.Header.unmask_payload = unmask
    gws.WebSocket.read_frame = read_frame
    gws.WebSocket.read_message = read_message
    gws.WebSocket.receive = receive
    gws.WebSocket.close = close
    gws.WebSocket.max_message_bytes = max_message_bytes
    APPLIED = True
