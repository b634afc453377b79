#!/usr/bin/env bash
# Install the Debian libraries that the bpy wheel links (and ffmpeg, used to make test clips)
# when they are missing. Safe to run repeatedly; does nothing when all are present.
set -euo pipefail
need=()
have_lib() { ldconfig -p 2>/dev/null | grep -q "$1"; }
have_lib 'libX11.so.6'        || need+=(libx11-6)
have_lib 'libXrender.so.1'    || need+=(libxrender1)
have_lib 'libXfixes.so.3'     || need+=(libxfixes3)
have_lib 'libXi.so.6'         || need+=(libxi6)
have_lib 'libxkbcommon.so.0'  || need+=(libxkbcommon0)
have_lib 'libSM.so.6'         || need+=(libsm6)
have_lib 'libICE.so.6'        || need+=(libice6)
have_lib 'libXext.so.6'       || need+=(libxext6)
have_lib 'libGL.so.1'         || need+=(libgl1)
have_lib 'libEGL.so.1'        || need+=(libegl1)
command -v ffmpeg >/dev/null  || need+=(ffmpeg)
[ ${#need[@]} -eq 0 ] && exit 0
echo "installing system packages: ${need[*]}" >&2
sudo=""
[ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null && sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
