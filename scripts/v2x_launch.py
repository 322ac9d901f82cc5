#!/usr/bin/env python3
"""Start a ROS 2 XML launch file where the ros2 CLI is missing (the PyPI-wheel set-up).

    scripts/v2x_launch.py launch/rsu.launch.xml [name:=value ...] [--print] [--show-args]

It implements exactly the XML subset our launch files use and builds each node's argv
the way launch_ros does, so the same files run unchanged under `ros2 launch`:

  tags:          launch, arg, let, node (pkg, exec, name, namespace, args, output,
                 if, unless) with param (from | name+value) and remap (from, to),
                 group (if, unless, scoped), push-ros-namespace, include (file, if,
                 unless) with arg (name, value), set_env (name, value, if, unless:
                 the variable is set for the nodes that follow in its scope)
  substitutions: $(var NAME), $(env NAME [DEFAULT]), $(dirname), $(find-pkg-share PKG)

Any other tag, attribute or substitution is refused with an error naming it and where
it is. Ctrl-C (SIGINT) or SIGTERM stops every node: SIGINT first, then SIGTERM, then
SIGKILL, as ros2 launch does.

Where real `ros2 launch` (launch 3.7 / launch_ros 0.28) refuses, this runner refuses too:
an empty argument value (`name:=`; write `name:="''"` for an empty string, which works
under both), a parameter value that YAML reads as null, a map, a date or a mixed list,
and an invalid namespace (`a//b`). Where it warns and goes on, so does this runner: a
`<param from>` file that does not exist is left out of the node's argv with a warning.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
import datetime
import json
import os
from pathlib import Path
import re
import shlex
import signal
import subprocess
import sys
import tempfile
import threading
import time
import xml.etree.ElementTree as ET

import yaml


class LaunchError(Exception):
    """The launch file uses something this runner does not implement, or is wrong."""


# --- substitutions --------------------------------------------------------------------

_SUBST_NAMES = {'var', 'env', 'dirname', 'find-pkg-share'}


@dataclass
class Context:
    """What substitutions and nodes see: launch configurations and the ROS namespace."""

    configs: dict[str, str]
    file: Path
    ros_namespace: str | None = None
    environ: dict[str, str] = field(default_factory=dict)  # set_env so far, in scope

    def child(self) -> Context:
        return Context(dict(self.configs), self.file, self.ros_namespace, dict(self.environ))


def _find_pkg_share(pkg: str) -> str:
    for prefix in os.environ.get('AMENT_PREFIX_PATH', '').split(os.pathsep):
        if prefix and (Path(prefix) / 'share/ament_index/resource_index/packages' / pkg).exists():
            return str(Path(prefix) / 'share' / pkg)
    raise LaunchError(f'$(find-pkg-share {pkg}): package {pkg!r} not found in AMENT_PREFIX_PATH')


def substitute(text: str, ctx: Context, where: str) -> str:
    """Expand every $(...) in text (nested substitutions allowed in arguments)."""
    out = []
    i = 0
    while i < len(text):
        if text.startswith('$(', i):
            depth, j = 1, i + 2
            while j < len(text) and depth:
                if text.startswith('$(', j):
                    depth += 1
                    j += 2
                    continue
                if text[j] == ')':
                    depth -= 1
                j += 1
            if depth:
                raise LaunchError(f'{where}: unterminated substitution in {text!r}')
            out.append(_evaluate(text[i + 2:j - 1], ctx, where))
            i = j
        else:
            out.append(text[i])
            i += 1
    return ''.join(out)


def _split_args(body: str) -> list[str]:
    # Arguments are separated by spaces outside nested $( ); quotes group words ('' is
    # an empty argument, as in $(env NAME '')).
    args, cur, depth, quote, have = [], '', 0, None, False
    for k, ch in enumerate(body):
        if quote:
            if ch == quote:
                quote = None
            else:
                cur += ch
            continue
        if ch in '\'"' and depth == 0:
            quote, have = ch, True
            continue
        if body.startswith('$(', k):
            depth += 1
        elif ch == ')' and depth:
            depth -= 1
        if ch.isspace() and depth == 0:
            if have:
                args.append(cur)
            cur, have = '', False
        else:
            cur += ch
            have = True
    if have:
        args.append(cur)
    return args


def _evaluate(body: str, ctx: Context, where: str) -> str:
    parts = _split_args(body.strip())
    if not parts:
        raise LaunchError(f'{where}: empty substitution $()')
    name, args = parts[0], [substitute(a, ctx, where) for a in parts[1:]]
    if name not in _SUBST_NAMES:
        raise LaunchError(f'{where}: substitution $({name} ...) is not implemented by this '
                          f'runner (implemented: {", ".join(sorted(_SUBST_NAMES))})')
    if name == 'var':
        if len(args) != 1:
            raise LaunchError(f'{where}: $(var) takes one argument')
        if args[0] not in ctx.configs:
            raise LaunchError(f'{where}: launch configuration {args[0]!r} is not set')
        return ctx.configs[args[0]]
    if name == 'env':
        if len(args) not in (1, 2):
            raise LaunchError(f'{where}: $(env NAME [DEFAULT]) takes one or two arguments')
        if args[0] in ctx.environ:   # set_env earlier in scope, as launch's context
            return ctx.environ[args[0]]
        if args[0] in os.environ:
            return os.environ[args[0]]
        if len(args) == 2:
            return args[1]
        raise LaunchError(f'{where}: environment variable {args[0]!r} is not set')
    if name == 'dirname':
        if args:
            raise LaunchError(f'{where}: $(dirname) takes no argument')
        return str(ctx.file.parent)
    if len(args) != 1:
        raise LaunchError(f'{where}: $(find-pkg-share PKG) takes one argument')
    return _find_pkg_share(args[0])


def _truth(value: str, where: str) -> bool:
    v = value.strip().lower()
    if v in ('true', '1'):
        return True
    if v in ('false', '0'):
        return False
    raise LaunchError(f'{where}: condition {value!r} is not true/false/1/0')


# --- the description ---------------------------------------------------------------------

_ALLOWED = {
    'launch': set(),
    'arg': {'name', 'default', 'description'},
    'let': {'name', 'value'},
    'node': {'pkg', 'exec', 'name', 'namespace', 'args', 'output', 'if', 'unless'},
    'param': {'from', 'name', 'value'},
    'remap': {'from', 'to'},
    'group': {'if', 'unless', 'scoped'},
    'push-ros-namespace': {'namespace'},
    'include': {'file', 'if', 'unless'},
    'set_env': {'name', 'value', 'if', 'unless'},
}
_CHILDREN = {
    'launch': {'arg', 'let', 'node', 'group', 'include', 'set_env'},
    'group': {'arg', 'let', 'node', 'group', 'include', 'push-ros-namespace', 'set_env'},
    'node': {'param', 'remap'},
    'include': {'arg'},
}


@dataclass
class NodeSpec:
    """One node to start, resolved: the argv of launch_ros plus what was in it."""

    pkg: str
    exec: str
    name: str | None
    namespace: str | None
    arguments: list[str]
    param_files: list[str] = field(default_factory=list)   # from= files, as given
    param_dicts: list[dict] = field(default_factory=list)  # name/value params, in order
    remaps: list[tuple[str, str]] = field(default_factory=list)
    argv: list[str] = field(default_factory=list)
    environ: dict[str, str] = field(default_factory=dict)  # set_env before it, in scope

    @property
    def label(self) -> str:
        return self.name or self.exec


def _where(el: ET.Element, ctx: Context) -> str:
    return f'{ctx.file}: <{el.tag}>'


def _check(el: ET.Element, ctx: Context, parent: str) -> None:
    where = _where(el, ctx)
    if el.tag not in _ALLOWED:
        raise LaunchError(f'{ctx.file}: tag <{el.tag}> is not implemented by this runner '
                          f'(implemented: {", ".join(sorted(_ALLOWED))})')
    if el.tag not in _CHILDREN.get(parent, set()) and not (parent == '' and el.tag == 'launch'):
        raise LaunchError(f'{where}: not allowed inside <{parent or "document"}>')
    extra = set(el.attrib) - _ALLOWED[el.tag]
    if extra:
        raise LaunchError(f'{where}: attribute(s) {", ".join(sorted(extra))} not implemented '
                          f'by this runner (implemented: {", ".join(sorted(_ALLOWED[el.tag]))})')


def _attr(el: ET.Element, name: str, ctx: Context, required: bool = True) -> str | None:
    if name not in el.attrib:
        if required:
            raise LaunchError(f'{_where(el, ctx)}: missing attribute {name!r}')
        return None
    return substitute(el.attrib[name], ctx, _where(el, ctx))


def _enabled(el: ET.Element, ctx: Context) -> bool:
    cond_if = _attr(el, 'if', ctx, required=False)
    cond_unless = _attr(el, 'unless', ctx, required=False)
    if cond_if is not None and not _truth(cond_if, _where(el, ctx)):
        return False
    if cond_unless is not None and _truth(cond_unless, _where(el, ctx)):
        return False
    return True


_SCALARS = (bool, int, float, str)


def _param_value(text: str, where: str = '<param>', name: str = ''):
    """launch_ros guesses the type of a value attribute the way YAML does ("5" -> 5); what
    is no ROS parameter type (null, a map, a date, a mixed list) is refused, as it does."""
    try:
        value = yaml.safe_load(text) if text.strip() else text
    except yaml.YAMLError:
        return text
    what = None
    if value is None:
        what = 'null'
    elif isinstance(value, dict):
        what = 'a map'
    elif isinstance(value, (datetime.date, datetime.datetime)):
        what = 'a date'
    elif isinstance(value, list):
        kinds = {type(v) for v in value}
        if not kinds <= set(_SCALARS) or (len(kinds) > 1 and kinds != {int, float}):
            what = 'a list of mixed or nested values'
        elif kinds == {int, float}:
            value = [float(v) for v in value]
    elif not isinstance(value, _SCALARS):
        what = type(value).__name__
    if what:
        raise LaunchError(f'{where}: parameter {name!r}: value {text!r} reads as {what} in '
                          'YAML, which is no ROS parameter type (bool, int, float, string or '
                          f'a list of one of them); quote it to pass a string: "\'{text}\'"')
    return value


_NS_TOKEN = re.compile(r'[A-Za-z_][A-Za-z0-9_]*')


def _valid_ns(ns: str | None, where: str) -> str | None:
    """Refuse a namespace ROS would refuse (rmw's rules), as real launch does."""
    if ns is None or ns == '/':
        return ns
    tokens = ns[1:].split('/')
    bad = next((t for t in tokens if not _NS_TOKEN.fullmatch(t)), None)
    if bad is not None:
        why = "repeated '/'" if bad == '' else f'token {bad!r}'
        raise LaunchError(f'{where}: namespace {ns!r} is not a valid ROS namespace ({why}): '
                          'use names of letters, digits and _ (not starting with a digit) '
                          "separated by single '/'")
    return ns


def _absolute_ns(base: str | None, ns: str | None) -> str | None:
    """launch_ros' make_namespace_absolute(prefix_namespace(base, ns)), '' included."""
    if base is None and ns is None:
        return None
    if ns is None:
        combined = base
    elif not base or ns.startswith('/'):
        combined = ns
    else:
        combined = ('' if base == '/' else base) + '/' + ns
    if combined != '/':
        combined = combined.rstrip('/')
    return combined if combined.startswith('/') else '/' + combined


class Launcher:
    """Parses a launch file into NodeSpecs; cli_args play the role of `name:=value`."""

    def __init__(self, cli_args: dict[str, str]):
        self.cli_args = dict(cli_args)
        self.nodes: list[NodeSpec] = []
        self.declared: dict[str, tuple[str | None, str]] = {}

    def load(self, path: Path, given: dict[str, str] | None = None,
             ros_namespace: str | None = None, environ: dict[str, str] | None = None):
        """Parse a launch file; given = launch configurations an <include> passes in,
        environ = what set_env set before it."""
        path = Path(path).resolve()
        if not path.is_file():
            raise LaunchError(f'launch file not found: {path}')
        try:
            root = ET.parse(path).getroot()
        except ET.ParseError as err:
            raise LaunchError(f'{path}: not well-formed XML: {err}') from None
        ctx = Context(dict(given if given is not None else self.cli_args), path, ros_namespace,
                      dict(environ or {}))
        _check(root, ctx, '')
        self._children(root, ctx)
        return self.nodes

    def _children(self, el: ET.Element, ctx: Context) -> None:
        for child in el:
            _check(child, ctx, el.tag)
            getattr(self, '_tag_' + child.tag.replace('-', '_'))(child, ctx)

    def _tag_arg(self, el, ctx):
        name = _attr(el, 'name', ctx)
        default = _attr(el, 'default', ctx, required=False)
        self.declared.setdefault(name, (default, el.attrib.get('description', '')))
        if name not in ctx.configs:
            if default is None:
                raise LaunchError(f'{ctx.file}: argument {name!r} has no default and was not '
                                  f'given (pass {name}:=VALUE)')
            ctx.configs[name] = default

    def _tag_let(self, el, ctx):
        ctx.configs[_attr(el, 'name', ctx)] = _attr(el, 'value', ctx)

    def _tag_group(self, el, ctx):
        if not _enabled(el, ctx):
            return
        scoped = _truth(_attr(el, 'scoped', ctx, required=False) or 'true', _where(el, ctx))
        self._children(el, ctx.child() if scoped else ctx)

    def _tag_set_env(self, el, ctx):
        if 'if' in el.attrib and 'unless' in el.attrib:  # launch refuses both, too
            raise LaunchError(f'{_where(el, ctx)}: if and unless are exclusive')
        if _enabled(el, ctx):
            ctx.environ[_attr(el, 'name', ctx)] = _attr(el, 'value', ctx)

    def _tag_push_ros_namespace(self, el, ctx):
        # An empty namespace pushes '/', as launch_ros does.
        ctx.ros_namespace = _valid_ns(
            _absolute_ns(ctx.ros_namespace, _attr(el, 'namespace', ctx)), _where(el, ctx))

    def _tag_include(self, el, ctx):
        if not _enabled(el, ctx):
            return
        file = _attr(el, 'file', ctx)
        given = dict(ctx.configs)
        for arg in el:
            given[_attr(arg, 'name', ctx)] = _attr(arg, 'value', ctx)
        inner = Launcher(self.cli_args)
        inner.load(Path(file), given=given, ros_namespace=ctx.ros_namespace,
                   environ=ctx.environ)
        self.nodes.extend(inner.nodes)
        for name, value in inner.declared.items():
            self.declared.setdefault(name, value)

    def _tag_node(self, el, ctx):
        if not _enabled(el, ctx):
            return
        pkg = _attr(el, 'pkg', ctx)
        exe = _attr(el, 'exec', ctx)
        name = _attr(el, 'name', ctx, required=False)
        ns = _attr(el, 'namespace', ctx, required=False)
        args = _attr(el, 'args', ctx, required=False)
        spec = NodeSpec(pkg, exe, name,
                        _valid_ns(_absolute_ns(ctx.ros_namespace, ns), _where(el, ctx)),
                        shlex.split(args) if args else [], environ=dict(ctx.environ))
        for child in el:
            _check(child, ctx, 'node')
            if child.tag == 'remap':
                spec.remaps.append((_attr(child, 'from', ctx), _attr(child, 'to', ctx)))
            elif 'from' in child.attrib:
                if 'name' in child.attrib:
                    raise LaunchError(f'{_where(child, ctx)}: name and from are exclusive')
                spec.param_files.append(_attr(child, 'from', ctx))
                spec.param_dicts.append({})  # keeps the order of files and values
            else:
                value = _attr(child, 'value', ctx)
                pname = _attr(child, 'name', ctx)
                spec.param_dicts.append(
                    {pname: _param_value(value, _where(child, ctx), pname)})
                spec.param_files.append('')
        self.nodes.append(spec)


def executable_path(pkg: str, exe: str) -> str:
    """launch_ros' ExecutableInPackage: <prefix>/lib/<pkg>/<exe> of the package's prefix."""
    share = Path(_find_pkg_share(pkg))
    candidate = share.parent.parent / 'lib' / pkg / exe
    if not candidate.is_file():
        raise LaunchError(f'executable {exe!r} not found in package {pkg!r} ({candidate})')
    return str(candidate)


def _warn_missing(path: str) -> None:
    print(f'[WARNING] [launch_ros.actions.node]: Parameter file path is not a file: {path}',
          file=sys.stderr, flush=True)


def build_argv(spec: NodeSpec, tmpdir: Path, resolve_exec=executable_path,
               warn=_warn_missing) -> list[str]:
    """The command line launch_ros builds for a node (name/value params go to temp files;
    a from= file that does not exist is left out with a warning, as launch_ros does)."""
    argv = [resolve_exec(spec.pkg, spec.exec), *spec.arguments, '--ros-args']
    if spec.name is not None:
        argv += ['-r', f'__node:={spec.name}']
    if spec.namespace is not None:
        argv += ['-r', f'__ns:={spec.namespace}']
    full_name = None
    if spec.name is not None and spec.namespace is not None:
        full_name = spec.namespace.rstrip('/') + '/' + spec.name
    for index, (path, values) in enumerate(zip(spec.param_files, spec.param_dicts, strict=False)):
        if path:
            if os.path.isfile(path):
                argv += ['--params-file', path]
            else:
                warn(path)
            continue
        key = full_name or '/**'
        file = tmpdir / f'launch_params_{spec.label}_{index}.yaml'
        file.write_text(yaml.dump({key: {'ros__parameters': values}}, default_flow_style=False))
        argv += ['--params-file', str(file)]
    for src, dst in spec.remaps:
        argv += ['-r', f'{src}:={dst}']
    return argv


# --- running -----------------------------------------------------------------------------

HOST_ONLY_PROFILE = Path(__file__).resolve().parents[1] / 'launch/config/fastdds_host_only.xml'


def host_only_environ(profile: Path = HOST_ONLY_PROFILE, environ=None) -> dict[str, str]:
    """The variables the launch files set with ros_graph_host_only true, for a process of
    our own that joins the stack's ROS graph (the demo's observer): Fast DDS 3 reads the
    first, Fast DDS 2 (V2X_FASTDDS3 not 1, see scripts/env.sh) only the second."""
    environ = os.environ if environ is None else environ
    out = {'FASTDDS_DEFAULT_PROFILES_FILE': str(profile)}
    if environ.get('V2X_FASTDDS3', '0') != '1':
        out['FASTRTPS_DEFAULT_PROFILES_FILE'] = str(profile)
    return out


def _pump(proc: subprocess.Popen, label: str) -> None:
    for line in proc.stdout:
        sys.stdout.write(f'[{label}-{proc.pid}] {line}')
        sys.stdout.flush()


def run(specs: list[NodeSpec], tmpdir: Path) -> int:
    """Start every node, forward their output, stop them all on SIGINT/SIGTERM."""
    procs: list[tuple[subprocess.Popen, str]] = []
    stopping = threading.Event()

    def stop(signum=None, frame=None):
        stopping.set()

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    for spec in specs:
        argv = build_argv(spec, tmpdir)
        print(f'[INFO] [launch]: process started: {spec.label}: {shlex.join(argv)}', flush=True)
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True, bufsize=1, start_new_session=True,
                                env={**os.environ, **spec.environ})
        threading.Thread(target=_pump, args=(proc, spec.label), daemon=True).start()
        procs.append((proc, spec.label))
    reported = set()
    while not stopping.is_set():
        for proc, label in procs:
            if proc.poll() is not None and proc.pid not in reported:
                reported.add(proc.pid)
                print(f'[ERROR] [launch]: process has died [{label}, pid {proc.pid}, '
                      f'exit code {proc.returncode}]', flush=True)
        if len(reported) == len(procs):
            break
        time.sleep(0.1)
    return _shutdown(procs)


def _shutdown(procs) -> int:
    worst = 0
    for sig, grace in ((signal.SIGINT, 10.0), (signal.SIGTERM, 5.0), (signal.SIGKILL, 2.0)):
        alive = [p for p, _ in procs if p.poll() is None]
        if not alive:
            break
        for p in alive:
            try:
                os.killpg(p.pid, sig)
            except ProcessLookupError:
                pass
        end = time.monotonic() + grace
        while time.monotonic() < end and any(p.poll() is None for p in alive):
            time.sleep(0.05)
    for p, _label in procs:
        code = p.wait()
        if code not in (0, -signal.SIGINT, 130):
            worst = worst or 1
    return worst


def shown_argv(argv: list[str], tmpdir: Path, environ: dict[str, str] | None = None) -> list:
    """argv with each temporary parameter file replaced by its content (nothing is left
    behind by --print): {"temporary params file": {...}}; then, when set_env set any,
    the node's added environment: {"environment": {...}}."""
    shown = [{'temporary params file': yaml.safe_load(Path(item).read_text())}
             if item.startswith(str(tmpdir)) else item for item in argv]
    return shown + [{'environment': dict(environ)}] if environ else shown


def parse_cli(argv: list[str]):
    """Parse the command line: the file, name:=value launch arguments, options."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('file', help='launch file (XML)')
    parser.add_argument('args', nargs='*', help='launch arguments as name:=value')
    parser.add_argument('--print', action='store_true',
                        help="print each node's argv (one JSON list a line; a temporary "
                             'parameter file is shown as {"temporary params file": '
                             '{...}}, the environment set_env adds as a last item '
                             '{"environment": {...}}) and exit')
    parser.add_argument('--show-args', action='store_true',
                        help="show the launch file's arguments and exit")
    opts = parser.parse_args(argv)
    given = {}
    for item in opts.args:
        # ros2launch's parse_launch_arguments: an empty name or value is malformed
        if ':=' not in item or item.startswith(':=') or (item.count(':=') == 1
                                                         and item.endswith(':=')):
            parser.error(f"malformed launch argument '{item}', expected format "
                         "'<name>:=<value>' (an empty value is written name:=\"''\", as "
                         'for ros2 launch)')
        k, v = item.split(':=', 1)
        given[k] = v
    return opts, given


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit status."""
    opts, given = parse_cli(sys.argv[1:] if argv is None else argv)
    launcher = Launcher(given)
    try:
        specs = launcher.load(Path(opts.file))
        unknown = set(given) - set(launcher.declared)
        if unknown:
            raise LaunchError(f'unknown launch argument(s): {", ".join(sorted(unknown))} '
                              f'(declared: {", ".join(sorted(launcher.declared))})')
        if opts.show_args:
            for name, (default, desc) in launcher.declared.items():
                print(f"'{name}':\n    {desc}\n    (default: '{default}')")
            return 0
        if opts.print:
            with tempfile.TemporaryDirectory(prefix='v2x_launch_') as tmpdir:
                for spec in specs:
                    print(json.dumps(shown_argv(build_argv(spec, Path(tmpdir)),
                                                Path(tmpdir), spec.environ)))
            return 0
        with tempfile.TemporaryDirectory(prefix='v2x_launch_') as tmpdir:
            return run(specs, Path(tmpdir))
    except LaunchError as err:
        print(f'[ERROR] [launch]: {err}', file=sys.stderr)
        return 2


if __name__ == '__main__':
    sys.exit(main())
