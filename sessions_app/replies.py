"""The replies a Valkey subscriber connection brings, parsed from the bytes its socket read
(RESP2 and RESP3), for the channel layer's receive loop (sessions_app/layer.py, issue 22).

redis-py parses one reply per awaited call, through a timeout context, a retry wrapper and a
generic pure-Python parser: most of the CPU a process spent on receiving a chat frame. Here one
socket read is parsed at once, and a published message (by far the most frequent reply) takes a
short path that yields `(channel, data)`; every other reply (subscribe and unsubscribe
confirmations, errors) comes out as redis-py's parser returns it, for `PubSub.handle_message`.
"""

from redis.exceptions import InvalidResponse, ResponseError

# A published message: a RESP3 push (or a RESP2 array) of three, "message" first.
_MESSAGE_PUSH = b">3\r\n$7\r\nmessage\r\n"
_MESSAGE_ARRAY = b"*3\r\n$7\r\nmessage\r\n"
_MESSAGE_PREFIX = len(_MESSAGE_PUSH)
_INCOMPLETE = -1  # in place of the position after a reply: its bytes have not all arrived


class Replies:
    """The replies of one connection: `feed` each chunk read from its socket; the bytes of a
    reply not complete yet are kept for the next chunk."""

    __slots__ = ("_rest",)

    def __init__(self):
        self._rest = b""

    def feed(self, chunk: bytes) -> list:
        """The replies complete after `chunk`, in order: `(channel, data)` (bytes) for each
        published message, the parsed reply for anything else. Raises InvalidResponse when the
        bytes are not RESP (the connection is then unusable); its message names no byte of the
        stream, because the stream carries chat frames and the error is logged."""
        try:
            return self._feed(chunk)
        except InvalidResponse:
            raise
        except (ValueError, IndexError):  # int() of a garbled length line, a cut-off type byte
            raise InvalidResponse("Protocol Error: a reply that is not RESP") from None

    def _feed(self, chunk):
        buffer = self._rest + chunk if self._rest else chunk
        end = len(buffer)
        replies = []
        position = 0
        while position < end:
            if buffer.startswith(_MESSAGE_PUSH, position) or buffer.startswith(_MESSAGE_ARRAY, position):
                channel, after = _bulk(buffer, position + _MESSAGE_PREFIX, end)
                if after == _INCOMPLETE:
                    break
                data, after = _bulk(buffer, after, end)
                if after == _INCOMPLETE:
                    break
                replies.append((channel, data))
            else:
                reply, after = _reply(buffer, position, end)
                if after == _INCOMPLETE:
                    break
                replies.append(reply)
            position = after
        self._rest = buffer[position:]
        return replies


def _bulk(buffer, position, end):
    """(the bulk string at `position`, the position after it); _INCOMPLETE as the position when
    it has not all arrived."""
    line_end = buffer.find(b"\r\n", position)
    if line_end < 0:
        return None, _INCOMPLETE
    if buffer[position] != 36:  # b"$": a message's channel and data are bulk strings
        raise InvalidResponse("Protocol Error: a message part that is not a bulk string")
    start = line_end + 2
    stop = start + int(buffer[position + 1 : line_end])
    if stop + 2 > end:
        return None, _INCOMPLETE
    return buffer[start:stop], stop + 2


def _reply(buffer, position, end):
    """(the reply at `position` as redis-py's RESP3 parser returns it without decoding, the
    position after it); _INCOMPLETE as the position when it has not all arrived."""
    line_end = buffer.find(b"\r\n", position)
    if line_end < 0:
        return None, _INCOMPLETE
    kind = buffer[position : position + 1]
    line = buffer[position + 1 : line_end]
    after = line_end + 2
    if kind in (b"*", b">", b"~", b"%"):  # array, push, set, map (a map as its keys and values)
        count = int(line)
        if count < 0:
            return None, after
        items = []
        for _ in range(count * 2 if kind == b"%" else count):
            item, after = _reply(buffer, after, end)
            if after == _INCOMPLETE:
                return None, _INCOMPLETE
            items.append(item)
        if kind == b"%":
            return dict(zip(items[::2], items[1::2], strict=True)), after
        return items, after
    if kind in (b"$", b"=", b"!"):  # bulk string, verbatim string, bulk error
        length = int(line)
        if length < 0:
            return None, after
        stop = after + length
        if stop + 2 > end:
            return None, _INCOMPLETE
        value = buffer[after:stop]
        if kind == b"=":
            value = value[4:]  # the "txt:" format prefix
        elif kind == b"!":
            value = ResponseError(value.decode("utf-8", errors="replace"))
        return value, stop + 2
    if kind == b"+":
        return line, after
    if kind == b"-":
        return ResponseError(line.decode("utf-8", errors="replace")), after
    if kind in (b":", b"("):
        return int(line), after
    if kind == b"_":
        return None, after
    if kind == b"#":
        return line == b"t", after
    if kind == b",":
        return float(line), after
    if kind == b"|":  # attributes: metadata before the reply they describe (skipped)
        _, after = _attributes(buffer, after, end, int(line))
        if after == _INCOMPLETE:
            return None, _INCOMPLETE
        return _reply(buffer, after, end)
    raise InvalidResponse(f"Protocol Error: unknown reply type byte {buffer[position]:#04x}")


def _attributes(buffer, position, end, count):
    """Skip `count` attribute key/value pairs; (None, the position after them)."""
    for _ in range(count * 2):
        _, position = _reply(buffer, position, end)
        if position == _INCOMPLETE:
            return None, _INCOMPLETE
    return None, position
