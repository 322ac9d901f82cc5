"""An evidence export: one tar holding a clip and everything needed to verify it offline
(the library of v2x_export_evidence and the console's download)."""

import io
import os
import tarfile

from v2x_evidence import evidence
from v2x_evidence.evidence import HEAD_FILE, LOG_FILE, PUBLIC_KEY_FILE, SIG_SUFFIX

README = """Evidence export of {stem}
station {station}, evidence key id {key_id}, log entries {first}..{last}

Files
  {video}  the clip
  {stem}.json  its sidecar: the event (source_id, origin, sequence, kind, T0), the
      station, the window, the gaps, and the clip's SHA-256
  {stem}.sig  the Ed25519 signature of the sidecar file, by the station's evidence key
  {log}  the evidence log from this clip's entry to the head: one entry a line, its
      JSON, a TAB, the base64 signature of that JSON; each entry names the SHA-256 of
      the JSON of the one before ("prev")
  {head}  the signed head of the log when exported (same line format)
  {pem}  the station's public key: get its key id from the station's operator by
      another channel and compare (the key id is the first 16 hex digits of the
      SHA-256 of the raw 32-byte key)

Verify with standard tools (OpenSSL 3)
  tar xf {stem}.evidence.tar
  sha256sum {video}      # must print the "sha256" of the sidecar:
  grep '"sha256"' {stem}.json
  openssl pkeyutl -verify -pubin -inkey {pem} -rawin -in {stem}.json -sigfile {stem}.sig
                          # must print: Signature Verified Successfully
  openssl pkey -pubin -in {pem} -outform DER | tail -c 32 | sha256sum | cut -c1-16
                          # the key id, to compare with the published one
  One log entry (line N): its JSON and its signature
  sed -n 1p {log} | cut -f1 | tr -d '\\n' > entry.json
  sed -n 1p {log} | cut -f2 | base64 -d > entry.sig
  openssl pkeyutl -verify -pubin -inkey {pem} -rawin -in entry.json -sigfile entry.sig
  sha256sum entry.json    # the "prev" of the next line; the clip's entry names the
                          # sidecar's SHA-256 ("sidecar_sha256")

Verify everything at once (the project's tool, offline)
  v2x_verify_evidence {stem}.evidence.tar --public-key {pem}
"""


class ExportRefused(ValueError):
    """The clip cannot be exported (not in the archive or not in its evidence log)."""


def export(directory: str, stem: str, out_path: str) -> str:
    """Write the export of stem from the archive directory to out_path; its README text.

    Raises ExportRefused (clip unknown to the log, or deleted) or OSError.
    """
    try:
        with open(os.path.join(directory, LOG_FILE), 'rb') as f:
            lines = f.read().split(b'\n')
    except FileNotFoundError:
        raise ExportRefused(f'no evidence log in {directory}: give the archive with '
                            "--archive-dir (event_clipper's archive_dir)") from None
    if lines and lines[-1] == b'':
        lines.pop()
    first = None
    state = evidence.LogState()
    for pos, line in enumerate(lines):
        try:
            body, record, _ = evidence.parse_line(line)
        except evidence.BadRecord:
            continue
        state.apply(record, evidence.sha256_hex(body))
        if record.get('type') == evidence.CLIP and record.get('stem') == stem:
            first = pos  # the last clip record of the stem (a re-cut replaces it)
    clip = state.clips.get(stem)
    if first is None or clip is None:
        raise ExportRefused(f'{stem} is not in the evidence log of {directory}')
    if clip.deleted is not None:
        raise ExportRefused(f'{stem} was deleted (evidence log entry '
                            f'{clip.deleted.get("index")}, {clip.deleted.get("reason")})')
    video = clip.entry.get('video') or ''
    names = [n for n in (video, stem + '.json', stem + SIG_SUFFIX, HEAD_FILE, PUBLIC_KEY_FILE)
             if n and os.path.exists(os.path.join(directory, n))]
    excerpt = b'\n'.join(lines[first:]) + b'\n'
    text = README.format(stem=stem, station=clip.entry.get('station', ''),
                         key_id=clip.entry.get('key_id', '') or 'none (unsigned)',
                         first=clip.entry.get('index'), last=state.next_index - 1,
                         video=video or '(no video: no footage)', log=LOG_FILE,
                         head=HEAD_FILE, pem=PUBLIC_KEY_FILE)
    part = out_path + '.part'
    with tarfile.open(part, 'w', format=tarfile.PAX_FORMAT) as tar:
        for name in names:
            tar.add(os.path.join(directory, name), arcname=name, recursive=False)
        for name, data in ((LOG_FILE, excerpt), ('README.txt', text.encode())):
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o644
            info.mtime = int(clip.entry.get('time', 0))
            tar.addfile(info, io.BytesIO(data))
    os.replace(part, out_path)
    return text
