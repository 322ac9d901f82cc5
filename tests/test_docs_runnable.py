"""The documentation's runnable command lines run, and print what the docs say they print.

Every fenced block with the info string ``console`` in README.md, docs/*.md,
deploy/README.md and src/*/README.md is a transcript: lines that start with ``$ `` are
commands (a trailing backslash continues one), the lines after a command are what it
prints. Each block runs as one bash script in a fresh temporary directory with
scripts/env.sh sourced, its own ROS_DOMAIN_ID and a strong test key in ``$V2X_KEY``
(never a real secret), so ``export``, files and background jobs carry from one command to
the next, as they do for an operator who pastes the block.

Expected output lines are matched in order against what the command printed (stdout and
stderr together); ``...`` inside a line matches anything, and a line that is only ``...``
skips any number of lines. ``[exit N]`` as an output line says the command ends with
status N (default 0). Blocks that cannot run here (hardware, sudo, a ROS distro) use
another info string and say why in the text beside them.

Pure parsing is tested first, without running anything, so a broken transcript format
fails with the doc line that broke it.
"""

from dataclasses import dataclass, field
import os
from pathlib import Path
import re
import secrets
import signal
import subprocess
import time

import pytest

from v2x_testing import random_domain_id

ROOT = Path(__file__).resolve().parents[1]
DOC_GLOBS = ('README.md', 'docs/*.md', 'deploy/README.md', 'src/*/README.md')
MARK = '@@V2X-DOC-CMD'
BLOCK_TIMEOUT_S = 240  # the lab quick start starts two stacks and a broker


@dataclass
class Command:
    """One ``$ `` command of a transcript, with what the doc says it prints."""

    line: int
    text: str
    expected: list[str] = field(default_factory=list)
    exit_code: int = 0


@dataclass
class Block:
    """One ``console`` block: where it is and its commands in order."""

    path: Path
    line: int
    commands: list[Command]

    @property
    def name(self) -> str:
        return f'{self.path.relative_to(ROOT)}:{self.line}'


def parse_blocks(path: Path, text: str) -> list[Block]:
    """Every ```console block of one Markdown text."""
    blocks, lines = [], text.splitlines()
    i = 0
    while i < len(lines):
        if lines[i].strip() != '```console':
            i += 1
            continue
        start, commands, i = i + 1, [], i + 1
        while i < len(lines) and lines[i].strip() != '```':
            raw = lines[i]
            if raw.startswith('$ '):
                cmd, first = raw[2:], i + 1
                while cmd.endswith('\\') and i + 1 < len(lines):
                    i += 1
                    cmd = cmd + '\n' + lines[i]
                commands.append(Command(first, cmd))
            elif commands:
                exit_match = re.fullmatch(r'\[exit (\d+)\]', raw.strip())
                if exit_match:
                    commands[-1].exit_code = int(exit_match.group(1))
                elif raw.strip():
                    commands[-1].expected.append(raw.rstrip())
            elif raw.strip():
                raise ValueError(f'{path}:{i + 1}: output before the first "$ " command')
            i += 1
        if i >= len(lines):
            raise ValueError(f'{path}:{start}: console block never closed')
        blocks.append(Block(path, start, commands))
        i += 1
    return blocks


def _pattern(expected: str) -> re.Pattern:
    parts = [re.escape(p) for p in expected.split('...')]
    return re.compile('.*'.join(parts))


def match_output(expected: list[str], actual: list[str]) -> str | None:
    """None when actual holds the expected lines in order; else what was missing."""
    pos = 0
    for want in expected:
        if want.strip() == '...':
            continue
        pattern = _pattern(want.strip())
        while pos < len(actual) and not pattern.search(actual[pos]):
            pos += 1
        if pos == len(actual):
            return f'expected line not printed (in order): {want!r}'
        pos += 1
    return None


def all_blocks() -> list[Block]:
    out = []
    for pattern in DOC_GLOBS:
        for path in sorted(ROOT.glob(pattern)):
            out.extend(parse_blocks(path, path.read_text(encoding='utf-8')))
    return out


def _script(block: Block) -> str:
    body = ['set +e', f'source {ROOT}/scripts/env.sh >/dev/null']
    for n, cmd in enumerate(block.commands):
        body.append(f'echo "{MARK} {n}"')
        body.append(cmd.text)
        # on a line of its own even when the command's output does not end with a newline
        body.append(f"printf '\\n{MARK} {n} rc=%s\\n' $?")
    body.append('wait')
    return '\n'.join(body) + '\n'


def _end_group(proc: subprocess.Popen) -> None:
    """Stop whatever the block left running (a failed block never reaches its `kill`)."""
    for sig, grace_s in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
        deadline = time.monotonic() + grace_s
        try:
            os.killpg(proc.pid, sig)
            while time.monotonic() < deadline:
                os.killpg(proc.pid, 0)  # raises once no member of the group is left
                time.sleep(0.05)
        except ProcessLookupError:
            break
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        pass


def run_block(block: Block, tmp_path: Path) -> list[tuple[Command, list[str], int]]:
    """Run a block as one bash script; each command with its output lines and status."""
    env = dict(os.environ, V2X_ENV_QUIET='1', ROS_DOMAIN_ID=str(random_domain_id()),
               V2X_KEY=secrets.token_hex(32), HOME=str(tmp_path), V2X_DOC_ROOT=str(ROOT))
    proc = subprocess.Popen(['bash', '-c', _script(block)], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=BLOCK_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        _end_group(proc)
        out, _ = proc.communicate()
        pytest.fail(f'{block.name}: did not finish within {BLOCK_TIMEOUT_S} s; it printed:\n'
                    + '\n'.join(out.splitlines()[-30:]))
    finally:
        _end_group(proc)
    results, current, lines = [], None, []
    for line in out.splitlines():
        if line.startswith(MARK):
            parts = line.split()
            if len(parts) == 2:
                current, lines = int(parts[1]), []
            else:
                rc = int(parts[2].split('=')[1])
                results.append((block.commands[current], lines, rc))
                current = None
        elif current is not None:
            lines.append(line)
    return results


def test_transcript_parser_reads_commands_outputs_and_exit_codes():
    """The parser splits commands, continuations, expected lines and [exit N]."""
    text = ('x\n```console\n$ echo a \\\n  b\na b\n$ false\n[exit 1]\n```\n'
            '```\n$ not a console block\n```\n')
    (block,) = parse_blocks(ROOT / 'README.md', text)
    assert [c.text for c in block.commands] == ['echo a \\\n  b', 'false']
    assert block.commands[0].expected == ['a b'] and block.commands[1].exit_code == 1


def test_output_matcher_wildcards_and_order():
    """'...' matches anything inside a line; lines must appear in order."""
    assert match_output(['[RECV] ... seq=1 ...'], ['noise', '[RECV] 2026 seq=1 src=a']) is None
    assert match_output(['b', 'a'], ['a', 'b']) is not None
    assert match_output(['...', 'z'], ['a']) is not None


def test_every_console_block_parses():
    """Every console block in the docs parses and has at least one command."""
    blocks = all_blocks()
    assert blocks, 'no runnable console block in the docs'
    for block in blocks:
        assert block.commands, f'{block.name}: console block without a "$ " command'


@pytest.mark.parametrize('block', all_blocks(), ids=lambda b: b.name)
def test_doc_block_runs_as_documented(block, tmp_path):
    """The block's commands run here and print what the doc says, with its exit codes."""
    results = run_block(block, tmp_path)
    assert len(results) == len(block.commands), (
        f'{block.name}: only {len(results)} of {len(block.commands)} commands finished')
    for cmd, lines, rc in results:
        where = f'{block.path.relative_to(ROOT)}:{cmd.line}'
        assert rc == cmd.exit_code, (
            f'{where}: `{cmd.text}` exited {rc}, the doc says {cmd.exit_code}\n'
            + '\n'.join(lines[-30:]))
        problem = match_output(cmd.expected, lines)
        assert problem is None, f'{where}: `{cmd.text}`: {problem}\n' + '\n'.join(lines[-30:])
