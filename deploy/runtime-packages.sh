#!/usr/bin/env bash
# runtime-packages.sh PREFIX: the Debian/Ubuntu packages that hold the shared libraries of
# PREFIX/bin/tandem (from `cmake --install`), one per line, sorted. deploy/Dockerfile installs
# exactly these in the runtime image; tests/deploy checks the list (no -dev package, every library
# resolved). Fails naming any library that is missing or owned by no package.
set -euo pipefail
bin=${1:?usage: runtime-packages.sh PREFIX}/bin/tandem
[ -x "$bin" ] || { echo "runtime-packages: no executable $bin" >&2; exit 2; }
libs=$(ldd "$bin") || { echo "runtime-packages: ldd $bin failed" >&2; exit 1; }
if grep -q "not found" <<<"$libs"; then
  echo "runtime-packages: unresolved libraries:" >&2
  grep "not found" <<<"$libs" >&2
  exit 1
fi
packages=()
while read -r path; do
  real=$(readlink -f "$path")
  owner=$(dpkg -S "$path" 2>/dev/null || dpkg -S "$real" 2>/dev/null || dpkg -S "/usr$real" 2>/dev/null || true)
  if [ -z "$owner" ]; then
    echo "runtime-packages: $path belongs to no package" >&2
    exit 1
  fi
  packages+=("${owner%%:*}")
done < <(awk '$2 == "=>" && $3 ~ /^\// {print $3}' <<<"$libs")
printf '%s\n' "${packages[@]}" | sort -u
