#!/usr/bin/env bash
# Opens a `zoo compare` report in headless Chromium: the page must load without console
# errors, and its rendered DOM must hold the table and the SVG plots with their text. Writes a
# screenshot next to the report (report.png) to look at.
#
#   scripts/check-report.sh DIR          # DIR: a `zoo compare --out` folder
#
# Needs Chromium (Debian: `apt-get install chromium`); CI has none, so this is a script, not a
# test.
set -euo pipefail
dir="${1:?usage: scripts/check-report.sh DIR}"
page="$(cd "$dir" && pwd)/report.html"
[[ -f "$page" ]] || { echo "check-report: no report.html in $dir" >&2; exit 1; }
browser="$(command -v chromium || command -v chromium-browser || command -v google-chrome || true)"
[[ -n "$browser" ]] || { echo "check-report: no Chromium found; install it (apt-get install chromium)" >&2; exit 1; }
flags=(--headless --no-sandbox --disable-gpu --window-size=1000,1600 --enable-logging=stderr --v=0)
log="$(mktemp)"
dom="$("$browser" "${flags[@]}" --dump-dom "file://$page" 2>"$log")"
"$browser" "${flags[@]}" --screenshot="$dir/report.png" "file://$page" 2>>"$log" >/dev/null
fail() { echo "check-report: $1" >&2; exit 1; }
if grep -E "CONSOLE|Uncaught" "$log" >/dev/null; then
    grep -E "CONSOLE|Uncaught" "$log" >&2
    fail "the page logged errors"
fi
grep -q "<table>" <<<"$dom" || fail "no table in the rendered page"
svgs=$(grep -o "<svg" <<<"$dom" | wc -l)
texts=$(grep -o "<text" <<<"$dom" | wc -l)
[[ $svgs -ge 1 ]] || fail "no plot in the rendered page"
[[ $texts -ge $((svgs * 8)) ]] || fail "the plots carry too little text ($texts text elements in $svgs plots)"
grep -q ">step</text>" <<<"$dom" || fail "no axis label in the plots"
[[ -s "$dir/report.png" ]] || fail "no screenshot was written"
rm -f "$log"
echo "check-report: $page renders: $svgs plots with $texts text elements, screenshot $dir/report.png"
