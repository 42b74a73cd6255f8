#!/usr/bin/env bash
# Benchmark: `tlsa tlsrpt import` of N generated reports (gzipped RFC 8460 JSON, one file
# each) and a summary query over them, beside parsedmarc (PyPI) parsing the same files.
# Usage: benches/tlsrpt.sh [N]   (default 100000; files are cached per N)
#   SAMPLE=K: parsedmarc parses the first K files only (default all); the report says so.
# Needs: python3 with venv and network access to PyPI (first run), GNU time (/usr/bin/time).
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-100000}
sample=${SAMPLE:-$n}
[[ -x /usr/bin/time ]] || { echo "benches/tlsrpt.sh: GNU time not found: apt-get install -y time" >&2; exit 1; }

cargo build --release --quiet
tlsa=$PWD/target/release/tlsa
base=$PWD/target/bench-tlsrpt
dir=$base/$n
if [[ ! -f $dir/done ]]; then
  echo "generating $n reports in $dir ..."
  rm -rf "$dir"; python3 benches/tlsrpt_gen.py "$n" "$dir/reports"; touch "$dir/done"
fi
if [[ ! -x $base/venv/bin/parsedmarc ]]; then
  python3 -m venv "$base/venv" && "$base/venv/bin/pip" install -q parsedmarc
fi

run=$(mktemp -d); trap 'rm -rf "$run"' EXIT
printf 'state_dir = "%s"\n[dnssec]\nresolver = "127.0.0.1:53"\nmode = "ad"\n' "$run/state" > "$run/tlsa.toml"
# "wall seconds, peak RSS KiB" of a command run under GNU time.
measure() {
  /usr/bin/time -f '%e %M' -o "$run/time" "$@" > "$run/out" 2> "$run/err" || { cat "$run/err" >&2; exit 1; }
  read -r wall rss < "$run/time"
}

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
echo "reports: $n files, $(du -sh "$dir/reports" | cut -f1) gzipped"

measure "$tlsa" tlsrpt -c "$run/tlsa.toml" import --json "$dir/reports"
stored=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["stored"])' "$run/out")
[[ $stored == "$n" ]] || { echo "benches/tlsrpt.sh: stored $stored of $n" >&2; exit 1; }
printf 'tlsa import, %d reports: %.2f s, %.0f reports/s, peak RSS %d KiB, store %s\n' \
  "$n" "$wall" "$(echo "$n / $wall" | bc -l)" "$rss" "$(du -sh "$run/state/tlsrpt.sqlite" | cut -f1)"

measure "$tlsa" tlsrpt -c "$run/tlsa.toml" import --json "$dir/reports"
printf 'tlsa import again (all duplicates): %.2f s, peak RSS %d KiB\n' "$wall" "$rss"

measure "$tlsa" tlsrpt -c "$run/tlsa.toml" summary --json
rows=$(python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))["rows"]))' "$run/out")
printf 'tlsa summary --json over %d reports: %.2f s, %d rows, peak RSS %d KiB\n' "$n" "$wall" "$rows" "$rss"
measure "$tlsa" tlsrpt -c "$run/tlsa.toml" summary --since 2026-11-25 --domain mx1.example.net --html "$run/page.html"
printf 'tlsa summary --since --domain --html: %.2f s, peak RSS %d KiB\n' "$wall" "$rss"

# parsedmarc on the first $sample of the same files, one process (shell-expanded paths).
mkdir -p "$run/sample"
# A glob, not `ls | head`: head closing the pipe early would fail the script under pipefail.
reports=("$dir"/reports/*)
for f in "${reports[@]:0:$sample}"; do ln -s "$f" "$run/sample/${f##*/}"; done
measure "$tlsa" tlsrpt -c "$run/tlsa.toml" --store "$run/sample.sqlite" import --json "$run/sample"
printf 'tlsa import, the same %d reports: %.2f s, peak RSS %d KiB\n' "$sample" "$wall" "$rss"
# A larger stack raises the argument-size limit (a quarter of it) for 100,000 paths.
measure bash -c "ulimit -s 65536; cd '$run/sample' && '$base/venv/bin/parsedmarc' --offline *.json.gz"
parsed=$(python3 -c '
import json,sys
data=json.load(open(sys.argv[1]))
print(len(data.get("smtp_tls_reports", [])))' "$run/out")
printf 'parsedmarc %s --offline, the same %d reports: %.2f s, %d reports parsed, peak RSS %d KiB\n' \
  "$("$base/venv/bin/pip" show parsedmarc | sed -n 's/^Version: //p')" "$sample" "$wall" "$parsed" "$rss"
if [[ $sample != "$n" ]]; then
  echo "note: parsedmarc ran over $sample of the $n reports."
fi
