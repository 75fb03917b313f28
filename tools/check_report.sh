#!/usr/bin/env bash
# Renders a rhythm report.html in headless Chromium, as a reader would, and
# fails if the page is not self-contained, logs a console error or an
# uncaught exception, or renders empty.
#
#   tools/check_report.sh OUT/report.html [SCREENSHOT.png]
#
# Needs Debian's `chromium` (apt-get install -y chromium). Writes the
# screenshot (default: next to the report, report.png) and prints a line per
# check. Exit status 0 = all checks passed.
set -euo pipefail

html=${1:?usage: tools/check_report.sh REPORT.html [SCREENSHOT.png]}
shot=${2:-${html%.html}.png}
[ -f "$html" ] || { echo "FAIL: no such file: $html"; exit 1; }
chrome=$(command -v chromium || command -v chromium-browser || command -v google-chrome || true)
[ -n "$chrome" ] || { echo "FAIL: chromium not found (apt-get install -y chromium)"; exit 1; }

fail=0
ok() { echo "ok:   $*"; }
bad() { echo "FAIL: $*"; fail=1; }

# 1. Self-contained: no external resource reference.
if grep -Eqi '(src|href)=["'"'"']?(https?:)?//|url\((["'"'"'])?(https?:)?//|@import|<link[^>]+stylesheet' "$html"; then
  bad "external resource reference in $html:"
  grep -Eoi '(src|href)=["'"'"']?(https?:)?//[^ >]*|url\([^)]*\)|@import[^;]*' "$html" | head -5
else
  ok "no external resources"
fi

url="file://$(cd "$(dirname "$html")" && pwd)/$(basename "$html")"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
flags=(--headless --no-sandbox --disable-gpu --disable-background-networking
  --disable-component-update --disable-sync --no-first-run --hide-scrollbars
  --user-data-dir="$work/profile" --enable-logging=stderr --v=0
  --virtual-time-budget=4000)

# 2. The DOM after scripts ran.
timeout 90 "$chrome" "${flags[@]}" --dump-dom "$url" >"$work/dom.html" 2>"$work/dom.log" || true
# 3. A full-page screenshot.
timeout 90 "$chrome" "${flags[@]}" --window-size=1280,2600 --screenshot="$work/shot.png" "$url" \
  >/dev/null 2>"$work/shot.log" || true

# Console errors and uncaught exceptions (Chromium logs console messages
# as `CONSOLE(...)` / `console` lines with --enable-logging).
if grep -hiE 'Uncaught|CONSOLE\(.*(error|exception)|:ERROR:CONSOLE|SyntaxError|TypeError|ReferenceError' \
    "$work/dom.log" "$work/shot.log" >"$work/errors.txt"; then
  bad "console errors:"; head -10 "$work/errors.txt"
else
  ok "no console errors"
fi

# Rendered content: the script marks the body and draws tokens, curves,
# heatmaps and head dots.
dom="$work/dom.html"
count() { { grep -o "$1" "$dom" || true; } | wc -l | tr -d ' '; }
if grep -q 'data-rendered="yes"' "$dom"; then ok "script ran to the end"; else bad "script did not finish (no data-rendered)"; fi
toks=$(count 'class="tok')
[ "$toks" -gt 0 ] && ok "$toks tokens rendered" || bad "no tokens rendered"
paths=$(count '<path')
[ "$paths" -ge 3 ] && ok "$paths SVG paths (curves)" || bad "curves missing ($paths paths)"
canv=$(count '<canvas')
[ "$canv" -ge 2 ] && ok "$canv heatmap canvases" || bad "heatmaps missing ($canv canvases)"
dots=$(count '<circle')
[ "$dots" -ge 1 ] && ok "$dots SVG circles (heads, anchors)" || bad "head chart missing"

# The screenshot exists and is not blank (a blank PNG compresses to almost nothing).
if [ -s "$work/shot.png" ]; then
  cp "$work/shot.png" "$shot"
  size=$(wc -c <"$shot")
  [ "$size" -gt 20000 ] && ok "screenshot $shot ($size bytes)" || bad "screenshot looks empty ($size bytes)"
else
  bad "no screenshot"; tail -5 "$work/shot.log"
fi

exit $fail
