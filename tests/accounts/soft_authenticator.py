"""A software WebAuthn authenticator for the passkey tests.

It does what a platform authenticator and the browser do between them: it makes an
ES256 key pair per credential, answers creation options with a "none" attestation,
and answers request options with a signed assertion, all encoded as the browser's
PublicKeyCredential.toJSON() would. CBOR is written with cbor2 (a test-only
dependency); the server side never sees anything but what a browser would send.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import struct
from dataclasses import dataclass, field

import cbor2
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

UP, UV, BE, BS, AT = 0x01, 0x04, 0x08, 0x10, 0x40
AAGUID = bytes.fromhex("00112233445566778899aabbccddeeff")


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass
class SoftCredential:
    credential_id: bytes
    key: ec.EllipticCurvePrivateKey
    rp_id: str
    user_handle: bytes
    sign_count: int = 0

    def cose_public_key(self) -> bytes:
        numbers = self.key.public_key().public_numbers()
        return cbor2.dumps({1: 2, 3: -7, -1: 1, -2: numbers.x.to_bytes(32, "big"),
                            -3: numbers.y.to_bytes(32, "big")})


@dataclass
class SoftAuthenticator:
    origin: str = "http://localhost:8000"
    credentials: dict[bytes, SoftCredential] = field(default_factory=dict)

    def _client_data(self, kind: str, challenge: str, origin: str | None) -> bytes:
        return json.dumps({"type": kind, "challenge": challenge, "origin": origin or self.origin,
                           "crossOrigin": False}).encode()

    def create(self, options: dict, *, origin: str | None = None, rp_id: str | None = None,
               flags: int = UP | UV | BE | BS, credential_id: bytes | None = None) -> dict:
        """navigator.credentials.create(): a new credential for ``options`` (creation options JSON)."""
        rp_id = rp_id or options["rp"]["id"]
        credential = SoftCredential(credential_id=credential_id or os.urandom(32), key=ec.generate_private_key(ec.SECP256R1()),
                                    rp_id=rp_id, user_handle=unb64url(options["user"]["id"]))
        self.credentials[credential.credential_id] = credential
        cred_id = credential.credential_id
        attested = AAGUID + struct.pack(">H", len(cred_id)) + cred_id + credential.cose_public_key()
        auth_data = (hashlib.sha256(rp_id.encode()).digest() + bytes([flags | AT])
                     + struct.pack(">I", credential.sign_count) + attested)
        attestation = cbor2.dumps({"fmt": "none", "attStmt": {}, "authData": auth_data})
        client_data = self._client_data("webauthn.create", options["challenge"], origin)
        return {
            "id": b64url(cred_id), "rawId": b64url(cred_id), "type": "public-key",
            "authenticatorAttachment": "platform", "clientExtensionResults": {},
            "response": {"clientDataJSON": b64url(client_data), "attestationObject": b64url(attestation),
                         "transports": ["internal", "hybrid"]},
        }

    def get(self, options: dict, *, credential: SoftCredential | None = None, origin: str | None = None,
            rp_id: str | None = None, sign_count: int | None = None, flags: int = UP | UV | BE | BS) -> dict:
        """navigator.credentials.get(): an assertion for ``options`` (request options JSON).

        With allowCredentials, the first one this authenticator holds; otherwise (discoverable)
        ``credential`` or the only one it holds. ``sign_count`` forces the counter it reports.
        """
        if credential is None:
            allowed = [unb64url(c["id"]) for c in options.get("allowCredentials") or []]
            held = [c for cid, c in self.credentials.items() if not allowed or cid in allowed]
            assert held, "no matching credential on this authenticator"
            credential = held[0]
        credential.sign_count = credential.sign_count + 1 if sign_count is None else sign_count
        auth_data = (hashlib.sha256((rp_id or credential.rp_id).encode()).digest() + bytes([flags])
                     + struct.pack(">I", credential.sign_count))
        client_data = self._client_data("webauthn.get", options["challenge"], origin)
        signature = credential.key.sign(auth_data + hashlib.sha256(client_data).digest(), ec.ECDSA(hashes.SHA256()))
        return {
            "id": b64url(credential.credential_id), "rawId": b64url(credential.credential_id),
            "type": "public-key", "authenticatorAttachment": "platform", "clientExtensionResults": {},
            "response": {"clientDataJSON": b64url(client_data), "authenticatorData": b64url(auth_data),
                         "signature": b64url(signature), "userHandle": b64url(credential.user_handle)},
        }
