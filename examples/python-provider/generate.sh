#!/usr/bin/env bash
# Generates the Python stubs of proto/orrery/v1/*.proto into
# examples/python-provider/generated/ (git-ignored) with grpc_tools.protoc, the
# protoc bundled in the grpcio-tools wheel: no system protoc is needed.
#
# Usage: generate.sh [--force]
# Regenerates only when a .proto file is newer than the stubs, unless --force.
# Uses $PYTHON, else the repository's .venv (made by scripts/setup).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
python="${PYTHON:-$root/.venv/bin/python}"
out="$here/generated"
stamp="$out/.stamp"

# One run at a time (tests may start several providers at once).
exec 9>"$here/.generate.lock"
flock 9
if [ "${1:-}" != "--force" ] && [ -f "$stamp" ]; then
  newer=$(find "$root/proto" -name '*.proto' -newer "$stamp" | head -n 1)
  [ -z "$newer" ] && exit 0
fi
if ! "$python" -c 'import grpc_tools' 2>/dev/null; then
  echo "generate.sh: $python has no grpc_tools; run scripts/setup first" >&2
  exit 1
fi

# Generate next to the target and swap it in, so that a provider starting at
# the same moment sees the old stubs or the new ones, never half of them.
tmp="$(mktemp -d "$here/.generated.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
"$python" -m grpc_tools.protoc \
  --proto_path="$root/proto" \
  --python_out="$tmp" --pyi_out="$tmp" --grpc_python_out="$tmp" \
  "$root"/proto/orrery/v1/*.proto
touch "$tmp/.stamp"
rm -rf "$out"
mv -T "$tmp" "$out"
echo "generate.sh: stubs in $out"
