#!/usr/bin/env bash
# A container base image from Debian's own packages, for machines that reach a Debian
# mirror and PyPI but no container registry (so `FROM python:3.11-slim` cannot be pulled).
#
#   docker/build-base.sh                      # -> podman image gpnn-base:bookworm
#   BASE_TAG=my/base:1 MIRROR=http://deb.example/debian docker/build-base.sh
#
# Debian bookworm, minbase variant, with Python 3.11 (python3, python3-venv: the build stage
# makes /opt/venv with it; the runtime stage only runs it) and the C++ runtime the wheels
# link against (libstdc++6). Merged /usr set up by mmdebstrap's hook (not the usrmerge
# package, which would pull in Perl). No documentation, man pages or locales; no apt lists.
# Then the project's Dockerfiles build on it with `--build-arg BASE=gpnn-base:bookworm`.
# Needs root (or mmdebstrap's unshare mode) and `apt-get install mmdebstrap podman`.
set -euo pipefail

BASE_TAG=${BASE_TAG:-gpnn-base:bookworm}
SUITE=${SUITE:-bookworm}
MIRROR=${MIRROR:-http://deb.debian.org/debian}
SECURITY_MIRROR=${SECURITY_MIRROR:-http://deb.debian.org/debian-security}
PACKAGES=${PACKAGES:-python3,python3-venv,libstdc++6,ca-certificates}
ENGINE=${ENGINE:-podman}
# A fixed date makes the tarball's file times (and so the image) reproducible for one package set.
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(date -d "$(date +%Y-%m-%d)" +%s)}

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

start=$(date +%s)
mmdebstrap \
    --variant=minbase \
    --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr \
    --include="$PACKAGES" \
    --aptopt='APT::Install-Recommends "false"' \
    --dpkgopt='path-exclude=/usr/share/man/*' \
    --dpkgopt='path-exclude=/usr/share/doc/*' \
    --dpkgopt='path-include=/usr/share/doc/*/copyright' \
    --dpkgopt='path-exclude=/usr/share/info/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' \
    --dpkgopt='path-exclude=/usr/share/lintian/*' \
    --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/* "$1"/var/log/*' \
    --customize-hook='find "$1"/usr/lib/python3* -name __pycache__ -type d -prune -exec rm -rf {} +' \
    "$SUITE" "$out/base.tar" \
    "deb $MIRROR $SUITE main" \
    "deb $MIRROR $SUITE-updates main" \
    "deb $SECURITY_MIRROR $SUITE-security main"

"$ENGINE" import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change 'CMD ["python3"]' \
    --message "Debian $SUITE minbase + $PACKAGES (docker/build-base.sh)" \
    "$out/base.tar" "$BASE_TAG" >/dev/null
echo "$BASE_TAG: $(du -h "$out/base.tar" | cut -f1) tarball, built in $(($(date +%s) - start)) s"
