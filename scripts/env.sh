# Source me:  source scripts/env.sh
# A shell in which the workspace's messages import and every executable of ours
# (alert_gateway, v2x_alert_server, speed_policy, ...) is on PATH by name.
# Works in bash and zsh; with a sourced ROS 2 distro or with the PyPI wheels in .venv.

if [ -n "${BASH_SOURCE:-}" ]; then
  _v2x_ws=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
elif [ -n "${ZSH_VERSION:-}" ]; then
  # shellcheck disable=SC2296
  _v2x_ws=$(cd "$(dirname "${(%):-%x}")/.." && pwd)
else
  _v2x_ws=$(pwd)
fi

if [ ! -x "$_v2x_ws/.venv/bin/python" ]; then
  echo "[env] $_v2x_ws/.venv is missing: run 'make setup' first" >&2
  return 1 2>/dev/null || exit 1
fi

# The virtualenv: on a distro it sees the distro's packages (--system-site-packages).
VIRTUAL_ENV="$(cd "$_v2x_ws/.venv" && pwd -P)"
export VIRTUAL_ENV
case ":$PATH:" in *":$VIRTUAL_ENV/bin:"*) ;; *) PATH="$VIRTUAL_ENV/bin:$PATH" ;; esac

if [ -z "${ROS_DISTRO:-}" ]; then
  # The PyPI wheels install ROS like a prefix: share/, lib/ inside the venv.
  case ":${AMENT_PREFIX_PATH:-}:" in *":$VIRTUAL_ENV:"*) ;; *)
    AMENT_PREFIX_PATH="$VIRTUAL_ENV${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}" ;; esac
  case ":${CMAKE_PREFIX_PATH:-}:" in *":$VIRTUAL_ENV:"*) ;; *)
    CMAKE_PREFIX_PATH="$VIRTUAL_ENV${CMAKE_PREFIX_PATH:+:$CMAKE_PREFIX_PATH}" ;; esac
  export AMENT_PREFIX_PATH CMAKE_PREFIX_PATH
fi
# The venv's site-packages must come before the distro's dist-packages.
_v2x_site=$("$VIRTUAL_ENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
case ":${PYTHONPATH:-}:" in *":$_v2x_site:"*) ;; *)
  PYTHONPATH="$_v2x_site${PYTHONPATH:+:$PYTHONPATH}" ;; esac
export PYTHONPATH

export RMW_IMPLEMENTATION=${RMW_IMPLEMENTATION:-rmw_fastrtps_cpp}
# Which Fast DDS is in use: 3 (Kilted) reads FASTDDS_DEFAULT_PROFILES_FILE, 2 (Jazzy,
# Humble) only FASTRTPS_DEFAULT_PROFILES_FILE. The launch files set the host-only profile
# under both names unless V2X_FASTDDS3=1 (Kilted's rmw warns about the old name).
if [ -z "${V2X_FASTDDS3:-}" ]; then
  V2X_FASTDDS3=0
  _v2x_rest="$VIRTUAL_ENV:${AMENT_PREFIX_PATH:-}"
  while [ -n "$_v2x_rest" ]; do
    _v2x_prefix=${_v2x_rest%%:*}
    case $_v2x_rest in *:*) _v2x_rest=${_v2x_rest#*:} ;; *) _v2x_rest= ;; esac
    # Fast DDS 3 is libfastdds; Fast DDS 2 was libfastrtps
    if [ -n "$_v2x_prefix" ] && [ -e "$_v2x_prefix/lib/libfastdds.so" ]; then
      V2X_FASTDDS3=1
      break
    fi
  done
  unset _v2x_rest _v2x_prefix
fi
export V2X_FASTDDS3
# ultralytics: never probe the network or pip-install at run time; settings stay in the workspace.
export YOLO_OFFLINE=1 YOLO_AUTOINSTALL=false
export YOLO_CONFIG_DIR=${YOLO_CONFIG_DIR:-$_v2x_ws/.cache/ultralytics}

# The built workspace: messages (PYTHONPATH, LD_LIBRARY_PATH) and our packages. One build
# tree per distribution of the wheels (make setup V2X_ROS_WHEELS=..., remembered in
# .v2x-ros-wheels): kilted (default) and a sourced distro in build/ install/, jazzy in
# build-jazzy/ install-jazzy/ (a tree built for one is stale for the other).
_v2x_suffix=
if [ -z "${ROS_DISTRO:-}" ] && [ -f "$_v2x_ws/.v2x-ros-wheels" ]; then
  _v2x_wheels=$(cat "$_v2x_ws/.v2x-ros-wheels")
  [ "$_v2x_wheels" = kilted ] || _v2x_suffix="-$_v2x_wheels"
  unset _v2x_wheels
fi
V2X_BUILD_BASE="$_v2x_ws/build$_v2x_suffix"
V2X_INSTALL_BASE="$_v2x_ws/install$_v2x_suffix"
export V2X_BUILD_BASE V2X_INSTALL_BASE
unset _v2x_suffix
if [ -f "$V2X_INSTALL_BASE/local_setup.sh" ]; then
  if [ -n "${BASH_VERSION:-}" ] && [ -f "$V2X_INSTALL_BASE/local_setup.bash" ]; then
    # shellcheck source=/dev/null
    . "$V2X_INSTALL_BASE/local_setup.bash"
  elif [ -n "${ZSH_VERSION:-}" ] && [ -f "$V2X_INSTALL_BASE/local_setup.zsh" ]; then
    # shellcheck source=/dev/null
    . "$V2X_INSTALL_BASE/local_setup.zsh"
  else
    COLCON_CURRENT_PREFIX="$V2X_INSTALL_BASE"
    # shellcheck source=/dev/null
    . "$V2X_INSTALL_BASE/local_setup.sh"
  fi
  # Executables by name: ros2 run looks in lib/<pkg>; we put each on PATH.
  for _v2x_bin in "$V2X_INSTALL_BASE"/*/lib/*; do
    case "$(basename "$_v2x_bin")" in python3*|*.so) continue ;; esac
    [ -d "$_v2x_bin" ] || continue
    case ":$PATH:" in *":$_v2x_bin:"*) ;; *) PATH="$_v2x_bin:$PATH" ;; esac
  done
  unset _v2x_bin
elif [ -z "${V2X_ENV_QUIET:-}" ]; then
  echo "[env] workspace not built yet: run 'make setup'" >&2
fi
export PATH
export V2X_WS="$_v2x_ws"
unset _v2x_ws _v2x_site
