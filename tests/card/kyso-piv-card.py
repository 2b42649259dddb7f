#!/usr/bin/python3
"""kyso-piv-card: a PIV smart card for Kyso's tests, behind vsmartcard's vpcd reader in pcscd.

It answers the PIV card edge (NIST SP 800-73-4) as far as OpenSC's PIV driver uses it: SELECT of
the PIV application, GET DATA (discovery, CCC, CHUID, key history, certificates), VERIFY with a
retry counter, CHANGE REFERENCE DATA and RESET RETRY COUNTER with a PUK, and GENERAL AUTHENTICATE
for RSA-2048 (raw) and ECDSA P-256. Like a real card, the key in slot 9C ("digital signature")
wants a VERIFY right before each signature (PIN always): OpenSC exposes it with
CKA_ALWAYS_AUTHENTICATE.

The card's state (keys, certificates, PIN, PUK, counters) is a JSON file that the card writes
back after every change, so a card that is pulled (the process killed) and put back keeps its
PIN counter, as a real one does. Every command that matters is logged, one line each, to --log:
tests read the log to see what the card was asked (e.g. a VERIFY before each 9C signature).

Usage: kyso-piv-card.py --state FILE --port N [--log FILE] [--exit-after-signatures N]
                        [--sign-delay-ms MS]
State file: {"pin": "123456", "puk": "12345678", "pin_tries": 3, "puk_tries": 3, "max_tries": 3,
             "guid": "<32 hex>", "slots": {"9a": {"key": "k.pem", "cert": "c.der"}, ...}}
"""

import argparse
import json
import os
import socket
import struct
import sys
import time

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa, utils

PIV_AID = bytes.fromhex("A000000308000010000100")
# ISO 7816-3 ATR, T=0 and T=1, historical bytes "KYSOPIV1": in no OpenSC driver's table, so
# OpenSC finds the PIV application by SELECT and treats the card as a generic PIV card (the
# plain 3B 80 80 01 01 is in the PIV driver's table as a card without EC).
ATR = bytes.fromhex("3B8880014B59534F5049563179")

VPCD_CTRL_OFF, VPCD_CTRL_ON, VPCD_CTRL_RESET, VPCD_CTRL_ATR = 0, 1, 2, 4

SW_OK = b"\x90\x00"
SW_NOT_FOUND = b"\x6a\x82"
SW_WRONG_DATA = b"\x6a\x80"
SW_REF_NOT_FOUND = b"\x6a\x88"
SW_SECURITY = b"\x69\x82"
SW_BLOCKED = b"\x69\x83"
SW_INS_UNKNOWN = b"\x6d\x00"
SW_CLA_UNKNOWN = b"\x6e\x00"
SW_P1P2 = b"\x6a\x86"

# GET DATA tags of the certificate for each key slot.
CERT_TAGS = {"9a": 0x5FC105, "9c": 0x5FC10A, "9d": 0x5FC10B, "9e": 0x5FC101}
ALG_RSA2048, ALG_P256 = 0x07, 0x11


def tlv(tag, value):
    """BER-TLV with a 1- or 2-byte tag."""
    t = tag.to_bytes(1 if tag < 0x100 else (2 if tag < 0x10000 else 3), "big")
    n = len(value)
    if n < 0x80:
        length = bytes([n])
    elif n < 0x100:
        length = bytes([0x81, n])
    else:
        length = bytes([0x82]) + n.to_bytes(2, "big")
    return t + length + value


def parse_tlvs(data):
    """Top-level BER-TLVs of `data` (tags of one or two bytes) as [(tag, value)]."""
    out, i = [], 0
    while i < len(data):
        tag = data[i]
        i += 1
        if tag & 0x1F == 0x1F:
            tag = (tag << 8) | data[i]
            i += 1
        n = data[i]
        i += 1
        if n & 0x80:
            k = n & 0x7F
            n = int.from_bytes(data[i:i + k], "big")
            i += k
        out.append((tag, data[i:i + n]))
        i += n
    return out


def unpad_pin(block):
    return block.rstrip(b"\xff")


class Card:
    def __init__(self, state_path, log_path, exit_after, sign_delay):
        self.state_path = state_path
        with open(state_path, encoding="utf-8") as f:
            self.state = json.load(f)
        self.log_file = open(log_path, "a", encoding="utf-8") if log_path else None
        self.exit_after = exit_after
        self.sign_delay = sign_delay / 1000.0
        self.signatures = 0
        self.keys, self.certs = {}, {}
        base = os.path.dirname(os.path.abspath(state_path))
        for slot, files in self.state.get("slots", {}).items():
            with open(os.path.join(base, files["key"]), "rb") as f:
                self.keys[slot] = serialization.load_pem_private_key(f.read(), password=None)
            with open(os.path.join(base, files["cert"]), "rb") as f:
                self.certs[slot] = f.read()
        self.reset()

    def reset(self):
        self.selected = True  # PIV is the card's default application
        self.pin_verified = False
        self.fresh_verify = False  # a VERIFY since the last 9C signature (PIN always)
        self.puk_verified = False
        self.chain = b""
        self.pending = b""

    def log(self, text):
        if self.log_file:
            self.log_file.write(f"{time.time():.6f} {text}\n")
            self.log_file.flush()

    def save(self):
        tmp = self.state_path + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(self.state, f, indent=1)
        os.replace(tmp, self.state_path)

    # ---- APDU level -------------------------------------------------------------------------

    def execute(self, apdu):
        if len(apdu) < 4:
            return SW_WRONG_DATA
        cla, ins, p1, p2 = apdu[0], apdu[1], apdu[2], apdu[3]
        data, le = self.body(apdu[4:])
        if cla & 0xE0 not in (0x00,):
            return SW_CLA_UNKNOWN
        if ins == 0xC0:  # GET RESPONSE
            return self.respond(b"", le, pending=True)
        self.pending = b""
        if cla & 0x10:  # command chaining: more data follows
            self.chain += data
            return SW_OK
        data, self.chain = self.chain + data, b""
        handler = {
            0xA4: self.select,
            0xCB: self.get_data,
            0x20: self.verify,
            0x24: self.change_reference,
            0x2C: self.reset_retry_counter,
            0x87: self.general_authenticate,
        }.get(ins)
        if handler is None:
            return SW_INS_UNKNOWN
        if ins != 0xA4 and not self.selected:
            return SW_NOT_FOUND if ins == 0xCB else SW_INS_UNKNOWN
        result = handler(p1, p2, data)
        if isinstance(result, tuple):
            return self.respond(result[0], le)
        return result

    @staticmethod
    def body(rest):
        """(data, Le) of a short or extended command APDU body (Le 0 means the maximum)."""
        if not rest:
            return b"", None
        if len(rest) == 1:
            return b"", rest[0] or 256
        if rest[0] == 0 and len(rest) >= 3:  # extended
            if len(rest) == 3:
                return b"", int.from_bytes(rest[1:3], "big") or 65536
            n = int.from_bytes(rest[1:3], "big")
            data = rest[3:3 + n]
            tail = rest[3 + n:]
            return data, (int.from_bytes(tail, "big") or 65536) if tail else None
        n = rest[0]
        data = rest[1:1 + n]
        tail = rest[1 + n:]
        return data, (tail[0] or 256) if tail else None

    def respond(self, payload, le, pending=False):
        """Answers with at most Le (256 by default) bytes; the rest waits for GET RESPONSE."""
        if pending:
            payload = self.pending
        limit = min(le or 256, 65536)
        chunk, self.pending = payload[:limit], payload[limit:]
        if self.pending:
            return chunk + bytes([0x61, min(len(self.pending), 0xFF) if len(self.pending) < 256 else 0])
        return chunk + SW_OK

    # ---- commands ----------------------------------------------------------------------------

    def select(self, p1, p2, data):
        if p1 != 0x04 or not data or not PIV_AID.startswith(data):
            self.selected = False
            return SW_NOT_FOUND
        self.selected = True
        self.log("SELECT PIV")
        algorithms = b"".join(tlv(0x80, bytes([a])) for a in (ALG_RSA2048, ALG_P256)) + tlv(0x06, b"\x00")
        template = (tlv(0x4F, PIV_AID) + tlv(0x79, tlv(0x4F, PIV_AID[:5])) +
                    tlv(0x50, b"Kyso test PIV") + tlv(0xAC, algorithms))
        return (tlv(0x61, template),)

    def data_object(self, tag):
        if tag == 0x7E:  # discovery: the PIV AID, PIN usage policy "PIV PIN only"
            return tlv(0x7E, tlv(0x4F, PIV_AID) + tlv(0x5F2F, b"\x40\x00"))
        guid = bytes.fromhex(self.state["guid"])
        if tag == 0x5FC107:  # CCC
            body = (tlv(0xF0, b"\xa0\x00\x00\x01\x16\xff\x02" + guid[:14]) + tlv(0xF1, b"\x21") +
                    tlv(0xF2, b"\x21") + tlv(0xF3, b"") + tlv(0xF4, b"\x00") + tlv(0xF5, b"\x10") +
                    tlv(0xF6, b"") + tlv(0xF7, b"") + tlv(0xFA, b"") + tlv(0xFB, b"") +
                    tlv(0xFC, b"") + tlv(0xFD, b"") + tlv(0xFE, b""))
            return tlv(0x53, body)
        if tag == 0x5FC102:  # CHUID: FASC-N, GUID, expiry, (empty) signature
            fascn = bytes.fromhex("D4E739DA739CED39CE739D836858210842108421C84210C3EB")
            body = (tlv(0x30, fascn) + tlv(0x34, guid) + tlv(0x35, b"20991231") +
                    tlv(0x3E, b"") + tlv(0xFE, b""))
            return tlv(0x53, body)
        for slot, cert_tag in CERT_TAGS.items():
            if tag == cert_tag and slot in self.certs:
                body = tlv(0x70, self.certs[slot]) + tlv(0x71, b"\x00") + tlv(0xFE, b"")
                return tlv(0x53, body)
        return None

    def get_data(self, p1, p2, data):
        if (p1, p2) != (0x3F, 0xFF):
            return SW_P1P2
        fields = dict(parse_tlvs(data))
        if 0x5C not in fields:
            return SW_WRONG_DATA
        tag = int.from_bytes(fields[0x5C], "big")
        obj = self.data_object(tag)
        if obj is None:
            return SW_NOT_FOUND
        return (obj,)

    def tries_sw(self, left):
        return SW_BLOCKED if left <= 0 else bytes([0x63, 0xC0 | min(left, 15)])

    def check_secret(self, which, given):
        """Compares the PIN or PUK; counts a failure; True when right."""
        key = "pin" if which == "pin" else "puk"
        if self.state[key + "_tries"] <= 0:
            return None
        if given == self.state[key].encode():
            self.state[key + "_tries"] = self.state["max_tries"]
            self.save()
            return True
        self.state[key + "_tries"] -= 1
        self.save()
        return False

    def verify(self, p1, p2, data):
        if p2 not in (0x80, 0x81):
            return SW_REF_NOT_FOUND
        which = "pin" if p2 == 0x80 else "puk"
        if p1 == 0xFF:  # reset the security status
            self.pin_verified = self.fresh_verify = False
            self.log(f"VERIFY reset {which}")
            return SW_OK
        if not data:
            left = self.state[which + "_tries"]
            if which == "pin" and self.pin_verified and left > 0:
                return SW_OK
            return self.tries_sw(left)
        ok = self.check_secret(which, unpad_pin(data))
        left = self.state[which + "_tries"]
        if ok is None:
            self.log(f"VERIFY {which} blocked")
            return SW_BLOCKED
        if not ok:
            self.log(f"VERIFY {which} wrong left={left}")
            if which == "pin":
                self.pin_verified = self.fresh_verify = False
            return self.tries_sw(left)
        self.log(f"VERIFY {which} ok")
        if which == "pin":
            self.pin_verified = self.fresh_verify = True
        else:
            self.puk_verified = True
        return SW_OK

    def change_reference(self, p1, p2, data):
        if p2 not in (0x80, 0x81) or len(data) != 16:
            return SW_WRONG_DATA
        which = "pin" if p2 == 0x80 else "puk"
        ok = self.check_secret(which, unpad_pin(data[:8]))
        if ok is None:
            return SW_BLOCKED
        if not ok:
            self.log(f"CHANGE {which} wrong")
            return self.tries_sw(self.state[which + "_tries"])
        self.state[which] = unpad_pin(data[8:]).decode()
        self.save()
        self.log(f"CHANGE {which} ok")
        return SW_OK

    def reset_retry_counter(self, p1, p2, data):
        if p2 != 0x80:
            return SW_REF_NOT_FOUND
        if p1 == 0x02:
            # ISO 7816-4: new PIN only, the PUK having been verified before. OpenSC sends this
            # for C_InitPIN after C_Login(CKU_SO) with user_pin_unblock_style =
            # init_pin_in_so_session.
            if not self.puk_verified:
                return SW_SECURITY
            new_pin = unpad_pin(data)
        else:
            if len(data) != 16:
                return SW_WRONG_DATA
            ok = self.check_secret("puk", unpad_pin(data[:8]))
            if ok is None:
                return SW_BLOCKED
            if not ok:
                self.log("UNBLOCK wrong puk")
                return self.tries_sw(self.state["puk_tries"])
            new_pin = unpad_pin(data[8:])
        if not 4 <= len(new_pin) <= 8:
            return SW_WRONG_DATA
        self.state["pin"] = new_pin.decode()
        self.state["pin_tries"] = self.state["max_tries"]
        self.save()
        self.log("UNBLOCK ok")
        return SW_OK

    def general_authenticate(self, p1, p2, data):
        slot = f"{p2:02x}"
        key = self.keys.get(slot)
        if key is None:
            return SW_NOT_FOUND
        fields = dict(parse_tlvs(data))
        inner = dict(parse_tlvs(fields.get(0x7C, b"")))
        challenge = inner.get(0x81)
        if challenge is None:
            return SW_WRONG_DATA
        if slot != "9e" and not self.pin_verified:
            self.log(f"SIGN {slot} refused: no PIN")
            return SW_SECURITY
        if slot == "9c" and not self.fresh_verify:
            self.log(f"SIGN {slot} refused: PIN always")
            return SW_SECURITY
        if isinstance(key, rsa.RSAPrivateKey):
            if p1 != ALG_RSA2048 or len(challenge) != key.key_size // 8:
                return SW_WRONG_DATA
            n = key.private_numbers()
            m = int.from_bytes(challenge, "big")
            if m >= n.public_numbers.n:
                return SW_WRONG_DATA
            # RSA with the CRT: the card sees a padded block and applies the raw private key.
            s1 = pow(m, n.dmp1, n.p)
            s2 = pow(m, n.dmq1, n.q)
            s = s2 + n.q * ((n.iqmp * (s1 - s2)) % n.p)
            signature = s.to_bytes(key.key_size // 8, "big")
        else:
            if p1 != ALG_P256 or len(challenge) != 32:
                return SW_WRONG_DATA
            signature = key.sign(challenge, ec.ECDSA(utils.Prehashed(hashes.SHA256())))
        if slot == "9c":
            self.fresh_verify = False
        if self.sign_delay:
            time.sleep(self.sign_delay)
        self.signatures += 1
        self.log(f"SIGN {slot} ok n={self.signatures}")
        if self.exit_after and self.signatures >= self.exit_after:
            self.log("PULLED after signature")
            # The card is pulled as the answer would have gone out: the host never sees it.
            raise CardPulled()
        return (tlv(0x7C, tlv(0x82, signature)),)


class CardPulled(Exception):
    pass


def recv_exact(sock, n):
    buf = b""
    while len(buf) < n:
        part = sock.recv(n - len(buf))
        if not part:
            return None
        buf += part
        # vpcd writes the length and the message separately: ACK at once, not 40 ms later.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)
    return buf


def serve(card, port):
    while True:
        try:
            sock = socket.create_connection(("127.0.0.1", port))
            break
        except OSError:
            time.sleep(0.05)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    card.log(f"INSERTED port={port}")
    while True:
        head = recv_exact(sock, 2)
        if head is None:
            card.log("reader closed")
            return
        (size,) = struct.unpack("!H", head)
        msg = recv_exact(sock, size) if size else b""
        if msg is None:
            return
        if size == 1:
            if msg[0] in (VPCD_CTRL_OFF, VPCD_CTRL_ON, VPCD_CTRL_RESET):
                card.reset()
            elif msg[0] == VPCD_CTRL_ATR:
                sock.sendall(struct.pack("!H", len(ATR)) + ATR)
            continue
        try:
            answer = card.execute(msg)
        except CardPulled:
            sock.close()
            return
        except Exception as e:  # a card answers, whatever it was sent
            card.log(f"ERROR {e!r}")
            answer = b"\x6f\x00"
        sock.sendall(struct.pack("!H", len(answer)) + answer)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--state", required=True)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--log")
    ap.add_argument("--exit-after-signatures", type=int, default=0)
    ap.add_argument("--sign-delay-ms", type=float, default=0)
    args = ap.parse_args()
    card = Card(args.state, args.log, args.exit_after_signatures, args.sign_delay_ms)
    serve(card, args.port)
    return 0


if __name__ == "__main__":
    sys.exit(main())
