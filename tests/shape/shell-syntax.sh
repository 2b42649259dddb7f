#!/usr/bin/env bash
# Every shell script of the tree parses (bash -n): a script that only a person runs by hand (a
# benchmark, a crash loop) is otherwise broken without any test noticing.
#   tests/shape/shell-syntax.sh SOURCE_DIR
set -uo pipefail
ROOT="${1:?usage: $0 SOURCE_DIR}"
bad=0 n=0
while IFS= read -r -d '' f; do
  n=$((n + 1))
  bash -n "$f" || { echo "does not parse: ${f#"$ROOT"/}" >&2; bad=1; }
done < <(find "$ROOT" \( -name build -o -name 'build-*' -o -name node_modules -o -name .git \) -prune -o \
  -type f \( -name '*.sh' -o -path "$ROOT/run" -o -path "$ROOT/.ci/run" \) -print0)
echo "$n shell scripts checked"
exit "$bad"
