"""The console's evidence routes: a legal hold (authenticated like inject) and the export.

    POST /api/archive/{stem}/hold   {"reason": "...", "release": false}  hold or release
    GET  /api/archive/{stem}/export                                     one .tar to verify

A hold or a release is a signed record of the archive's evidence log naming who (the
basic-auth user, or ``token``), when and why (v2x_recorder.v2x_hold_evidence.set_hold);
the export is v2x_export_evidence's tar (the clip, sidecar, signature, log records, head,
public key and a README of the checks). The signature status of each clip is in the
archive listing (v2x_console.archive).
"""

import os
import shutil
import tempfile
from typing import Callable

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, JSONResponse
from starlette.background import BackgroundTask

from v2x_console.archive import ArchiveReader
from v2x_evidence.export import ExportRefused
from v2x_evidence.hold import HoldRefused
from v2x_evidence.log import KeyConfigError

MAX_REASON_CHARS = 500


def _problem(status: int, error: str, field: str, detail: str) -> JSONResponse:
    return JSONResponse({'error': error, 'field': field, 'detail': detail},
                        status_code=status)


def parse_hold(body) -> tuple[str, bool]:
    """(reason, release) of a hold request body; raises ValueError naming the field."""
    if not isinstance(body, dict):
        raise ValueError('body: not a JSON object')
    reason, release = body.get('reason'), body.get('release', False)
    if not isinstance(reason, str) or not reason.strip():
        raise ValueError('reason: a reason is required')
    if len(reason) > MAX_REASON_CHARS:
        raise ValueError(f'reason: longer than {MAX_REASON_CHARS} characters')
    if not isinstance(release, bool):
        raise ValueError('release: true or false')
    return reason.strip(), release


def add_evidence_routes(app: FastAPI, archive: ArchiveReader,
                        refuse: Callable[[Request], JSONResponse | None],
                        who: Callable[[Request], str | None], body_json) -> None:
    """Add the hold and export routes (refuse: the actions' check; who: the caller)."""

    @app.post('/api/archive/{stem}/hold')
    async def hold(request: Request, stem: str) -> JSONResponse:
        """Put a legal hold on a clip, or release it: a signed evidence log record."""
        if (refused := refuse(request)) is not None:
            return refused
        try:
            reason, release = parse_hold(await body_json(request))
        except ValueError as exc:
            field, _, detail = str(exc).partition(': ')
            return _problem(422, 'invalid', field, detail)
        try:
            result = await run_in_threadpool(archive.hold, stem, not release,
                                             who(request) or '', reason)
        except HoldRefused as exc:
            return _problem(409, 'refused', 'stem', str(exc))
        except (KeyConfigError, OSError) as exc:
            return _problem(503, 'unavailable', 'evidence_key_file', str(exc))
        return JSONResponse(result)

    @app.get('/api/archive/{stem}/export')
    async def export(stem: str):
        """The clip and everything needed to verify it offline, as one tar."""
        tmp = tempfile.mkdtemp(prefix='v2x-export-')
        try:
            path = await run_in_threadpool(archive.export, stem, tmp)
        except (ExportRefused, OSError) as exc:
            shutil.rmtree(tmp, ignore_errors=True)
            return _problem(404, 'not_found', 'stem', str(exc))
        return FileResponse(path, media_type='application/x-tar',
                            filename=os.path.basename(path),
                            background=BackgroundTask(shutil.rmtree, tmp, True))
