#!/usr/bin/env bash
# kyso-agent loads the document formats on first use (formats/, kyso/formats/documents.hpp):
#  - the agent's ELF needs none of libxml2, qpdf, HarfBuzz (or what they pull in);
#  - kyso-formats-documents.so needs them and exports kyso_formats_documents_v1 only.
# Usage: check-lazy-formats.sh <kyso-agent> <kyso-formats-documents.so>
set -euo pipefail
agent=$1 module=$2
heavy='libxml2|libqpdf|libharfbuzz|libgnutls|libglib|libicu|libfreetype'
fail() { echo "FAIL: $*" >&2; exit 1; }

needed=$(readelf -d "$agent" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p')
if grep -Eq "$heavy" <<<"$needed"; then fail "kyso-agent links $(grep -E "$heavy" <<<"$needed" | xargs)"; fi
if ldd "$agent" | grep -Eq "$heavy"; then fail "kyso-agent loads $(ldd "$agent" | grep -Eo "$heavy" | sort -u | xargs) at start"; fi
echo "ok: kyso-agent needs none of libxml2, qpdf, HarfBuzz, GnuTLS, GLib, ICU, FreeType"

mod_needed=$(readelf -d "$module" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p')
for lib in libxml2 libqpdf libharfbuzz-subset; do
  grep -q "^$lib" <<<"$mod_needed" || fail "the module does not link $lib"
done
exported=$(nm -D --defined-only "$module" | awk '{print $3}' | sort -u)
[[ $exported == kyso_formats_documents_v1 ]] || fail "the module exports more than its entry point: $(xargs <<<"$exported")"
echo "ok: the module links libxml2, qpdf, HarfBuzz and exports kyso_formats_documents_v1 only"
