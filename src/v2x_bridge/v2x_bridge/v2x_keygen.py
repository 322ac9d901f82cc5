"""v2x_keygen: make an Ed25519 key pair for a station and its trust-store entry, or an HMAC secret.

Writes <out-dir>/<station>.key (PEM PKCS#8 private key, mode 0600: the RSU's key_file)
and <out-dir>/<station>.pub (the trust-store line, listing --speaks-for ids), prints the
line, and with --trust-store appends it to that file (the vehicle's trust_store).
With --heartbeat it writes <out-dir>/heartbeat.key instead: the fleet's heartbeat key
(32 random bytes as 64 hex digits and a newline, mode 0600) for every gateway's
heartbeat_key_file: vehicles sign their heartbeats with it, and every receiver refuses it
for alerts, so a key taken from a vehicle signs no alert. With --hmac it writes
<out-dir>/hmac.key: the same format, the shared HMAC alert key of labs and the demo
(key_file / --key-file on every station; whoever holds it can sign any alert).
The recommended deployment (docs/protocol.md "Keys"): one Ed25519 pair per RSU, its line
in every vehicle's trust store, and one heartbeat key for the fleet.
"""

import argparse
import os
from pathlib import Path
import secrets
import sys

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from v2x_common.exit_codes import ExitCode
from v2x_protocol import keys


def parser() -> argparse.ArgumentParser:
    """The command line."""
    p = argparse.ArgumentParser(prog='v2x_keygen', description=__doc__.split('\n')[0])
    p.add_argument('--station-id', default='rsu_server_01', help='default %(default)s')
    p.add_argument('--out-dir', default='.', help='where the key files go (default .)')
    p.add_argument('--trust-store', default='', help='append the entry to this file')
    p.add_argument('--force', action='store_true', help='overwrite existing key files')
    p.add_argument('--speaks-for', default='',
                   help='comma-separated source ids this key may also sign for (the '
                   'detectors and intakes an RSU forwards for)')
    kind = p.add_mutually_exclusive_group()
    kind.add_argument('--hmac', action='store_true',
                      help='make a shared HMAC alert key (hmac.key; labs and the demo) '
                      'instead of an Ed25519 pair')
    kind.add_argument('--heartbeat', action='store_true',
                      help="make the fleet's heartbeat key (heartbeat.key: every gateway's "
                      'heartbeat_key_file; it signs no alert) instead of an Ed25519 pair')
    return p


def _write_private(path: Path, data: bytes) -> None:
    """Write data to a new file of mode 0600 (replacing an old one)."""
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, 'wb') as f:
        f.write(data)


SECRETS = {
    'hmac': ('hmac.key', 'HMAC secret: {path}  (mode 0600; give it as key_file / --key-file on '
             'every station; whoever holds it signs any alert: labs and the demo; never '
             'commit it)'),
    'heartbeat': ('heartbeat.key', 'heartbeat key: {path}  (mode 0600; give it as '
                  'heartbeat_key_file to every gateway, vehicles and RSUs; it signs vehicle '
                  'heartbeats only; never commit it)'),
}


def _make_secret(out: Path, kind: str, force: bool) -> int:
    name, note = SECRETS[kind]
    path = out / name
    if path.exists() and not force:
        print(f'v2x_keygen: {path} exists (use --force to replace it)', file=sys.stderr)
        return ExitCode.ERROR
    try:
        out.mkdir(parents=True, exist_ok=True)
        _write_private(path, (secrets.token_hex(32) + '\n').encode())
    except OSError as exc:
        print(f'v2x_keygen: {exc}', file=sys.stderr)
        return ExitCode.ERROR
    print(note.format(path=path))
    return ExitCode.OK


def main(argv=None, env=None) -> int:
    """Make the key pair; see --help."""
    args = parser().parse_args(argv)
    out = Path(args.out_dir)
    if args.hmac or args.heartbeat:
        return _make_secret(out, 'hmac' if args.hmac else 'heartbeat', args.force)
    key_path, pub_path = out / f'{args.station_id}.key', out / f'{args.station_id}.pub'
    if key_path.exists() and not args.force:
        print(f'v2x_keygen: {key_path} exists (use --force to replace it)', file=sys.stderr)
        return ExitCode.ERROR
    private = Ed25519PrivateKey.generate()
    public_raw = private.public_key().public_bytes(serialization.Encoding.Raw,
                                                   serialization.PublicFormat.Raw)
    try:
        speaks_for = [s.strip() for s in args.speaks_for.split(',') if s.strip()]
        entry = keys.trust_entry(args.station_id, public_raw, speaks_for)
    except keys.KeyConfigError as exc:
        print(f'v2x_keygen: {exc}', file=sys.stderr)
        return ExitCode.USAGE
    pem = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    try:
        out.mkdir(parents=True, exist_ok=True)
        _write_private(key_path, pem)
        pub_path.write_text(entry + '\n', encoding='utf-8')
        if args.trust_store:
            with open(args.trust_store, 'a', encoding='utf-8') as f:
                f.write(entry + '\n')
    except OSError as exc:
        print(f'v2x_keygen: {exc}', file=sys.stderr)
        return ExitCode.ERROR
    print(f'private key: {key_path}  (RSU: auth_mode ed25519, key_file; its station only)')
    print(f'public key:  {pub_path}  key id {keys.key_id_of(public_raw).hex()}')
    print(entry)
    return ExitCode.OK


if __name__ == '__main__':
    sys.exit(main())
