"""Checks A2A Agent Cards with the official a2a-sdk (issue 12).

Usage: python a2a_card_check.py JWK_FILE CARD_FILE...

JWK_FILE holds the public key the cards must be signed with, as a JWK
(`errand card --jwk`). For each card this prints one JSON object per line:

  {"card": PATH,
   "parsed": bool, "parse_error": str | null,
   "missing_required": [str],
   "verified": bool, "verify_error": str | null,
   "payload": str | null}

- parsed: google.protobuf.json_format.ParseDict(card, a2a_pb2.AgentCard()),
  strict: an unknown field, or a value of the wrong type, is an error.
- missing_required: the fields marked REQUIRED in a2a.proto that are missing
  or empty, as the sdk's own check reports them
  (a2a.utils.proto_utils.validate_proto_required_fields), plus any of the
  card's required top-level fields absent from the JSON itself.
- verified: the sdk's verifier (a2a.utils.signing.create_signature_verifier)
  accepts a signature, with EdDSA as the only algorithm and a key store that
  holds the JWK under its own kid, and nothing under any other.
- payload: the bytes the sdk checks the signature against (its canonical
  form of the card), so a caller can compare them with what it signed.

Exits 0 when it could check every card, whatever the verdicts.
"""

import json
import sys

from google.protobuf.json_format import ParseDict, ParseError
from jwt import PyJWK
from jwt.exceptions import PyJWKError

from a2a.types import a2a_pb2
from a2a.utils.errors import InvalidParamsError
from a2a.utils.proto_utils import validate_proto_required_fields
from a2a.utils.signing import (
    SignatureVerificationError,
    _canonicalize_agent_card,
    create_signature_verifier,
)

# AgentCard's REQUIRED fields in a2a.proto (v1.0), in their JSON names.
REQUIRED = [
    'name',
    'description',
    'supportedInterfaces',
    'version',
    'capabilities',
    'defaultInputModes',
    'defaultOutputModes',
    'skills',
]


def check(path, key_provider):
    with open(path, encoding='utf-8') as f:
        card = json.load(f)
    report = {
        'card': path,
        'parsed': False,
        'parse_error': None,
        'missing_required': [k for k in REQUIRED if k not in card],
        'verified': False,
        'verify_error': None,
        'payload': None,
    }
    try:
        message = ParseDict(card, a2a_pb2.AgentCard())
    except ParseError as e:
        report['parse_error'] = str(e)
        return report
    report['parsed'] = True
    try:
        validate_proto_required_fields(message)
    except InvalidParamsError as e:
        report['missing_required'] += [
            f"{err['field']}: {err['message']}"
            for err in (e.data or {}).get('errors', [])
        ]
    report['payload'] = _canonicalize_agent_card(message)
    verifier = create_signature_verifier(key_provider, ['EdDSA'])
    try:
        verifier(message)
        report['verified'] = True
    except SignatureVerificationError as e:
        report['verify_error'] = f'{type(e).__name__}: {e}'
    return report


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    with open(sys.argv[1], encoding='utf-8') as f:
        jwk = json.load(f)
    key = PyJWK(jwk)

    def key_provider(kid, jku):
        # A trusted key store with one key: the verifier gets it only for
        # the kid it is filed under.
        if kid != jwk['kid']:
            raise PyJWKError(f'no trusted key for kid {kid!r}')
        return key

    for path in sys.argv[2:]:
        print(json.dumps(check(path, key_provider)), flush=True)


if __name__ == '__main__':
    main()
