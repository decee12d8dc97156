"""Per-packet work of asyncssh that the NETCONF server leaves out (issue 11).

asyncssh 2.24.1 does six things for every SSH packet or read that cost a
small NETCONF RPC a large share of its CPU (cProfile and interleaved runs:
tools/bench/README.md, "The SSH layer"):

* Once encryption is on, :meth:`SSHConnection.send_packet` sends an empty
  ``SSH_MSG_IGNORE`` packet before every other packet: the countermeasure of
  RFC 4251 section 9.3.1 against the chosen-plaintext attack on CBC mode,
  whose IV for a packet is the last ciphertext block of the one before. With
  a cipher that has no chained IV (AES-GCM and chacha20-poly1305, whose nonce
  is a per-packet counter: RFC 5647's invocation counter, the sequence number
  in OpenSSH's PROTOCOL.chacha20poly1305; and CTR mode, RFC 4344, whose
  counter runs on across packets) the packet protects nothing, and it doubles
  the encryption, the packet assembly and the socket writes of every reply.
  OpenSSH's sshd does not send it.
* Every packet sent or received gets a log message prepared (payload, name,
  byte count) before asyncssh's logger decides, at its debug level 3 only,
  to write it.
* AES-GCM builds its ``AESGCM`` object, and so the AES key schedule, again
  for every packet in either direction (``GCMCipher``); here once per key.
* Every read of the connection cancels the keep-alive timer and schedules a
  new one (a timer handle, a heap push, the cancelled one left in the heap).
  Here a read notes the time, and the timer, when it fires before the
  keep-alive interval has passed since the last read, moves itself to that
  time: keep-alive requests go out at the same moments as asyncssh's.
* Every packet received becomes an ``SSHPacket`` whose type goes through a
  dozen tests, a handler look-up and an awaitable check before a channel's
  data reaches the session. Here, once authentication is done, the two
  packets a client sends for each RPC, ``SSH_MSG_CHANNEL_DATA`` of an open
  channel and ``SSH_MSG_IGNORE`` (asyncssh's and others' clients send one
  before each packet), are taken from the decrypted bytes directly, with the
  same checks; any other packet, or one of these that asyncssh would log or
  refuse, is handled by asyncssh's own code (decrypted once).
* A channel's data is copied into the channel's send buffer, taken out again
  in packet-sized pieces, framed by two layers of ``send_packet`` and logged
  (debug level 2). Here a write that fits the window and one packet, with
  nothing buffered before it, goes out at once as one ``SSH_MSG_CHANNEL_DATA``,
  built, padded, encrypted and counted for rekeying as asyncssh's
  ``send_packet`` does; with a key exchange due or under way, compression,
  logging, a cipher that wants its countermeasure or anything buffered, the
  write is asyncssh's.

:func:`lean_connection` and :func:`lean_channel` make a connection and its
channels instances of subclasses that leave these out (the connection gains
one attribute, each GCM cipher its ``AESGCM``). With CBC (which asyncssh's
default algorithms, the server's, do not offer) the ignore packets are still
sent, and at ``asyncssh.set_debug_level(3)`` with DEBUG logging packets are
logged as before.

The subclasses override asyncssh's internal methods, so they are used only
with the asyncssh release whose code they were checked against
(:data:`CHECKED_ASYNCSSH`, the version pinned in constraints.txt); with any
other release the connections stay asyncssh's own, also when its internals this module
imports are missing or moved (the agent still starts).
"""

from __future__ import annotations

import os
import struct
import time

import asyncssh
from asyncssh import SSHServerChannel, SSHServerConnection
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.ciphers.modes import CTR

try:  # asyncssh's internals, which another release may name or place otherwise
    from asyncssh.constants import MSG_CHANNEL_DATA, MSG_IGNORE, MSG_USERAUTH_LAST
    from asyncssh.crypto.cipher import GCMCipher
    from asyncssh.encryption import BasicEncryption, ChachaEncryption, Encryption, GCMEncryption
    from asyncssh.logging import SSHLogger
    from asyncssh.packet import SSHPacketLogger
except ImportError:  # then nothing is overridden (applies() is false), and the agent starts
    _INTERNALS = False

    class _Absent:
        """Stands for an internal class of asyncssh's that this release does not have."""

    MSG_IGNORE, MSG_CHANNEL_DATA = 2, 94  # RFC 4253 section 12, RFC 4254 section 9
    MSG_USERAUTH_LAST = 79  # RFC 4250 section 4.1.2
    GCMCipher = BasicEncryption = ChachaEncryption = Encryption = GCMEncryption = _Absent
    SSHLogger = SSHPacketLogger = _Absent
else:
    _INTERNALS = True

#: the asyncssh release whose ``send_packet``, ``send_newkeys``, packet logging,
#: keep-alive timer and encryption classes the overrides below were written against
CHECKED_ASYNCSSH = "2.24.1"

#: the payload asyncssh gives its countermeasure packet: ``String(b'')``
_EMPTY_STRING = b"\0\0\0\0"
#: padding_length, the message type, the recipient channel and the data's length
_DATA_HEAD = struct.Struct(">BBII")
#: the length of AES-GCM's authentication tag in SSH (RFC 5647)
_GCM_TAG = 16


def _uint32(value: int) -> bytes:
    return value.to_bytes(4, "big")


def applies() -> bool:
    """Whether the installed asyncssh is the release the overrides were checked against."""
    return _INTERNALS and asyncssh.__version__ == CHECKED_ASYNCSSH


def no_chained_iv(encryption: Encryption | None) -> bool:
    """Whether *encryption* needs no ``SSH_MSG_IGNORE`` countermeasure: AEAD or CTR, not CBC."""
    if isinstance(encryption, (GCMEncryption, ChachaEncryption)):
        return True
    # aes*-ctr and aes*-cbc share BasicEncryption (and its -etm subclass); the
    # mode of the cryptography Cipher inside tells them apart
    return (isinstance(encryption, BasicEncryption)
            and isinstance(encryption._cipher._cipher.mode, CTR))


def _packets_logged() -> bool:
    """asyncssh writes packet log messages only from debug level 3 (``SSHLogger.packet``)."""
    return SSHLogger._debug_level >= 3


def _log_sent_packet(self, pkttype, pktid, packet, note=""):  # noqa: ANN001, ANN202
    if _packets_logged():
        SSHPacketLogger.log_sent_packet(self, pkttype, pktid, packet, note)


def _log_received_packet(self, pkttype, pktid, packet, note=""):  # noqa: ANN001, ANN202
    if _packets_logged():
        SSHPacketLogger.log_received_packet(self, pkttype, pktid, packet, note)


class KeyedGCMCipher(GCMCipher):
    """asyncssh's AES-GCM with its ``AESGCM`` object made once per key, not per packet.

    The same nonce handling (``_iv``, ``_update_iv``) and results as
    ``GCMCipher``, whose instances become this class (:func:`_keyed`).
    """

    __slots__ = ()
    _aead: AESGCM
    #: the nonce's fixed field and its invocation counter (RFC 5647 section 7.1), kept
    #: apart: ``_iv`` is always ``_fixed`` followed by the counter's 8 bytes
    _fixed: bytes
    _invocation: int

    def _update_iv(self) -> None:
        # GCMCipher's, without reading the counter back out of _iv every time
        invocation = self._invocation = (self._invocation + 1) & 0xffffffffffffffff
        self._iv = self._fixed + invocation.to_bytes(8, "big")

    def encrypt_and_sign(self, header: bytes, data: bytes) -> tuple[bytes, bytes]:
        data = self._aead.encrypt(self._iv, data, header)
        self._update_iv()
        return header + data[:-_GCM_TAG], data[-_GCM_TAG:]

    def verify_and_decrypt(self, header: bytes, data: bytes, mac: bytes) -> bytes | None:
        try:
            decrypted = self._aead.decrypt(self._iv, data + mac, header)
        except InvalidTag:
            decrypted = None
        self._update_iv()
        return decrypted

    def seal_packet(self, header: bytes, packet: bytes) -> bytes:
        """*header*, the encrypted *packet* and its tag: what ``GCMEncryption.encrypt_packet``
        returns, joined (no split of the result to join again)."""
        sealed = self._aead.encrypt(self._iv, packet, header)
        self._update_iv()
        return header + sealed

    def open_packet(self, first: bytes, rest: bytes) -> bytes | None:
        """``GCMEncryption.decrypt_packet`` of a packet whose first block is *first*
        (the length, the associated data, and the start of the ciphertext) and whose
        remaining bytes, the tag included, are *rest*."""
        try:
            decrypted = self._aead.decrypt(self._iv, first[4:] + rest, first[:4])
        except InvalidTag:
            decrypted = None
        self._update_iv()
        return decrypted


def _keyed_gcm(encryption: object) -> KeyedGCMCipher | None:
    """*encryption*'s cipher if it is AES-GCM with its ``AESGCM`` made (:func:`_keyed`)."""
    if type(encryption) is GCMEncryption:
        cipher = encryption._cipher
        if type(cipher) is KeyedGCMCipher:
            return cipher
    return None


def _keyed(encryption: Encryption | None) -> None:
    """Give *encryption*'s AES-GCM cipher, if it has one, its ``AESGCM`` object once."""
    if isinstance(encryption, GCMEncryption) and type(encryption._cipher) is GCMCipher:
        cipher = encryption._cipher
        cipher._aead = AESGCM(cipher._key)
        cipher._fixed = cipher._iv[:4]
        cipher._invocation = int.from_bytes(cipher._iv[4:], "big")
        cipher.__class__ = KeyedGCMCipher


class _Decrypted:
    """Stands in for the receiving encryption while asyncssh's own ``_recv_packet``
    handles a packet :class:`LeanServerConnection` decrypted already (``None``: the
    MAC did not verify, which asyncssh then reports)."""

    __slots__ = ("plain",)

    def __init__(self, plain: bytes | None):
        self.plain = plain

    def decrypt_packet(self, *_: object) -> bytes | None:
        return self.plain


# Single inheritance and no slots of their own: an instance asyncssh created can
# become one (``__class__`` assignment needs the same object layout).
class LeanServerConnection(SSHServerConnection):
    """A server connection without countermeasure packets where the cipher needs none,
    packet log messages prepared only when asyncssh would write them, and the packets
    of every RPC (ignore and data received, data sent) handled directly."""

    __slots__ = ()

    log_sent_packet = _log_sent_packet
    log_received_packet = _log_received_packet

    #: loop time of the last data received (after authentication)
    _last_received = 0.0

    def send_packet(self, pkttype, *args, handler=None):  # noqa: ANN001, ANN201
        # the countermeasure is the only empty SSH_MSG_IGNORE asyncssh sends
        if (pkttype == MSG_IGNORE and args == (_EMPTY_STRING,)
                and no_chained_iv(self._send_encryption)):
            return
        super().send_packet(pkttype, *args, handler=handler)

    def _recv_pkthdr(self) -> bool:
        # asyncssh's, for AES-GCM, whose length field is not encrypted (RFC 5647
        # section 7.3; GCMEncryption.decrypt_header gives the block and its first
        # 4 bytes), without that call; anything else, a packet too long included, is
        # asyncssh's own
        blocksize = self._recv_blocksize
        inpbuf = self._inpbuf
        if type(self._recv_encryption) is not GCMEncryption or len(inpbuf) < blocksize:
            return super()._recv_pkthdr()
        pktlen = int.from_bytes(inpbuf[:4], "big")
        if pktlen > self._max_recv_pktlen:
            return super()._recv_pkthdr()  # which refuses it
        self._packet = inpbuf[:blocksize]
        self._inpbuf = inpbuf[blocksize:]
        self._pktlen = pktlen
        self._recv_handler = self._recv_packet
        return True

    def _recv_packet(self) -> bool:
        # asyncssh's _recv_packet with its two most frequent packets taken apart
        # directly; everything else (and anything unusual about these) goes through
        # asyncssh's own code, with the packet decrypted once
        enc = self._recv_encryption
        if (enc is None or not self._auth_complete or self._decompressor is not None
                or SSHLogger._debug_level >= 3):  # _packets_logged(), without the call
            return super()._recv_packet()
        macsize = self._recv_macsize
        rem = 4 + self._pktlen + macsize - self._recv_blocksize
        inpbuf = self._inpbuf
        if len(inpbuf) < rem:
            return False
        seq = self._recv_seq
        gcm = _keyed_gcm(enc)
        if gcm is not None:  # the tag follows the packet: one slice, no calls between
            plain = gcm.open_packet(self._packet, inpbuf[:rem])
        else:
            plain = enc.decrypt_packet(seq, self._packet, inpbuf[:rem - macsize], 4,
                                       inpbuf[rem - macsize:rem])
        if plain is not None and len(plain) > 1 and self._take(plain, rem):
            # asyncssh's _finish_recv_packet for these two types: neither is
            # MSG_NEWKEYS, and with encryption on there is no rollover to refuse
            if plain[1] > MSG_USERAUTH_LAST:
                self._auth_final = True
            if self._transport:
                self._recv_seq = (seq + 1) & 0xffffffff
            self._recv_handler = self._recv_pkthdr
            return True
        self._recv_encryption = _Decrypted(plain)
        try:
            return super()._recv_packet()
        finally:
            if type(self._recv_encryption) is _Decrypted:  # else a MSG_NEWKEYS replaced it
                self._recv_encryption = enc

    def _take(self, plain: bytes, rem: int) -> bool:
        """Handle decrypted *plain* (``padding_length || payload || padding``) as asyncssh
        would if it is a well-formed ``SSH_MSG_IGNORE`` or ``SSH_MSG_CHANNEL_DATA`` that
        needs no log message and no error; else leave it (False). A packet with less
        than the 4 bytes of padding RFC 4253 section 6 requires is left to asyncssh
        (which takes 1 to 3 and, with none, refuses the empty payload it reads)."""
        if plain[0] < 4:
            return False
        end = len(plain) - plain[0]  # the payload's end
        pkttype = plain[1]
        if pkttype == MSG_IGNORE:  # string data (RFC 4253 section 11.2), skipped
            if 6 + int.from_bytes(plain[2:6], "big") != end:
                return False
            chan = None
        elif pkttype == MSG_CHANNEL_DATA:  # uint32 channel, string data (RFC 4254 section 5.2)
            chan = self._channels.get(int.from_bytes(plain[2:6], "big"))
            size = int.from_bytes(plain[6:10], "big")
            # what asyncssh's _process_data checks, logs (debug level 2) or refuses
            if (type(chan) is not LeanServerChannel or 10 + size != end
                    or chan._recv_state != "open" or size > chan._recv_window
                    or SSHLogger._debug_level >= 2):
                return False
        else:
            return False
        self._inpbuf = self._inpbuf[rem:]
        self._packet = b""
        if chan is not None:
            chan._accept_data(plain[10:end])
        return True

    def send_data(self, chan: "LeanServerChannel", data: bytes) -> None:
        """Send *data* as one ``SSH_MSG_CHANNEL_DATA`` of *chan* (which checked the window
        and packet size), as :meth:`send_packet` would."""
        size = len(data)
        if (not self._can_send_lean() or self._compressor is not None or _packets_logged()
                or not no_chained_iv(self._send_encryption)):
            # RFC 4254 section 5.2: uint32 recipient channel, string data
            self.send_packet(MSG_CHANNEL_DATA, _uint32(chan._send_chan) + _uint32(size) + data,
                             handler=chan)
            return
        # padding_length, then the payload (byte type, uint32 channel, uint32 length and
        # the data) and the padding (RFC 4253 section 6), in one format
        padlen = -(self._send_enchdrlen + 9 + size) % self._send_blocksize
        if padlen < 4:
            padlen += self._send_blocksize
        packet = b"%s%s%s" % (_DATA_HEAD.pack(padlen, MSG_CHANNEL_DATA, chan._send_chan, size),
                              data, os.urandom(padlen))
        pktlen = len(packet)
        seq = self._send_seq
        gcm = _keyed_gcm(self._send_encryption)
        if gcm is not None:
            self._send(gcm.seal_packet(_uint32(pktlen), packet))
        else:
            packet, mac = self._send_encryption.encrypt_packet(seq, _uint32(pktlen), packet)
            self._send(packet + mac)
        self._send_seq = (seq + 1) & 0xffffffff
        self._rekey_bytes_sent += pktlen

    def _can_send_lean(self) -> bool:
        """No key exchange due or under way, encryption on, logged in (send_packet's checks)."""
        return (self._auth_complete and self._kex_complete and self._send_encryption is not None
                and self._rekey_bytes_sent < self._rekey_bytes
                and not (self._rekey_seconds and time.monotonic() >= self._rekey_time))

    def send_newkeys(self, k, h):  # noqa: ANN001, ANN201
        super().send_newkeys(k, h)
        # the server's keys for both directions, the receiving ones used from the
        # client's MSG_NEWKEYS on
        _keyed(self._send_encryption)
        _keyed(self._next_recv_encryption)

    def _reset_keepalive_timer(self) -> None:
        # asyncssh cancels the timer and schedules a new one for every read; here
        # the time is noted, and a timer that fires early moves itself on. A timer
        # due later than the interval allows (set_keepalive shortened it) is set again.
        if self._auth_complete:
            now = self._last_received = self._loop.time()
            timer = self._keepalive_timer
            if timer is None or timer.when() > now + self._keepalive_interval:
                self._cancel_keepalive_timer()
                self._set_keepalive_timer()

    def _keepalive_timer_callback(self) -> None:
        due = self._last_received + self._keepalive_interval
        if due > self._loop.time():
            self._keepalive_timer = self._loop.call_at(due, self._keepalive_timer_callback)
        else:
            super()._keepalive_timer_callback()


class LeanServerChannel(SSHServerChannel):
    """A server channel whose packet log messages are prepared only when asyncssh would
    write them, and whose writes of one packet go out directly."""

    __slots__ = ()

    log_sent_packet = _log_sent_packet
    log_received_packet = _log_received_packet

    def write(self, data, datatype=None):  # noqa: ANN001, ANN201
        # the checks of asyncssh's write and _flush_send_buf for a write that becomes
        # one packet at once; anything else is asyncssh's
        size = len(data)
        if (datatype is None and not self._send_buf and self._send_state == "open"
                and not self._encoding and 0 < size <= self._send_window
                and size <= self._send_pktsize and not self._send_paused
                and SSHLogger._debug_level < 2 and self._send_chan is not None):
            self._send_window -= size
            self._conn.send_data(self, bytes(data))
            return
        super().write(data, datatype)


def lean_connection(conn: SSHServerConnection) -> bool:
    """Make *conn* a :class:`LeanServerConnection`, if :func:`applies`; whether it did.

    Called before the key exchange (from ``SSHServer.connection_made``).
    """
    if not applies() or type(conn) is not SSHServerConnection:
        return False
    conn.__class__ = LeanServerConnection
    return True


def lean_channel(chan: SSHServerChannel) -> bool:
    """Make *chan* a :class:`LeanServerChannel`, if :func:`applies` and its connection is
    a :class:`LeanServerConnection` (whose ``send_data`` its writes use); whether it did."""
    if (not applies() or type(chan) is not SSHServerChannel
            or type(chan.get_connection()) is not LeanServerConnection):
        return False
    chan.__class__ = LeanServerChannel
    return True
