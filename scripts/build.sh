#!/usr/bin/env bash
# colcon build of the workspace inside the environment of scripts/env.sh.
# Skips the build when no source file changed since the last successful one.
set -euo pipefail
ws=$(cd "$(dirname "$0")/.." && pwd)
cd "$ws"
export V2X_ENV_QUIET=1
# shellcheck source=/dev/null
set +u  # colcon's local_setup scripts read unset variables
source "$ws/scripts/env.sh"
set -u

build="$V2X_BUILD_BASE" install="$V2X_INSTALL_BASE"   # per distribution (env.sh)
log="$ws/log${build#"$ws/build"}"
stamp="$install/.v2x-build-stamp"
# The stamp covers every source file and the venv in use (console scripts name its python).
sources=$( (cd "$ws" && find src colcon.meta cmake -type f \
  ! -path '*/__pycache__/*' ! -name '*.pyc' -print0 | sort -z | xargs -0 sha256sum;
  readlink -f "$ws/.venv") | sha256sum | cut -c1-16)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$sources" ]; then
  echo "[build] workspace up to date"
  exit 0
fi

# A build made with another venv caches that venv's cmake and python: start clean.
venv_now=$(readlink -f "$ws/.venv")
if [ -f "$build/.v2x-venv" ] && [ "$(cat "$build/.v2x-venv")" != "$venv_now" ]; then
  echo "[build] the virtualenv changed: removing ${build#"$ws/"}/ and ${install#"$ws/"}/ made with the old one"
  rm -rf "$build" "$install"
fi

echo "[build] colcon build (${build#"$ws/"}/, ${install#"$ws/"}/)"
# --symlink-install: edits to Python sources take effect without a rebuild.
colcon --log-base "$log" build \
  --base-paths "$ws/src" \
  --build-base "$build" --install-base "$install" \
  --symlink-install \
  --metas "$ws/colcon.meta" \
  --event-handlers console_cohesion- summary+ status- \
  --cmake-args \
    "-DCMAKE_PROJECT_INCLUDE=$ws/cmake/fix_wheel_includes.cmake" \
    "-DPython3_EXECUTABLE=$ws/.venv/bin/python" \
    -DBUILD_TESTING=OFF \
    -Wno-dev
echo "$sources" > "$stamp"
echo "$venv_now" > "$build/.v2x-venv"
