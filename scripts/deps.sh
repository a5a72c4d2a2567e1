#!/usr/bin/env bash
# Install the Debian packages paramd needs, when they are missing.
# As root: apt-get installs them.  Otherwise: print the one line to run.
set -eu
pkgs=(cmake gcc make pkg-config libopenblas-dev zlib1g-dev libsodium-dev dataset-fashion-mnist fortunes)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -eq 0 ]; then
  echo "paramd: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${missing[@]}" >/dev/null
else
  echo "paramd: missing Debian packages; run:"
  echo "  sudo apt-get install -y ${missing[*]}"
  exit 1
fi
