#!/usr/bin/env bash
# Benchmark: `tlsa hash` over N certificates against the openssl pipeline that
# operators use per certificate:
#   openssl x509 -pubkey -noout | openssl pkey -pubin -outform DER | openssl dgst -sha256
# Usage: benches/hash.sh [N]   (default 1000; certificates are cached per N)
#   SAMPLE=K: run the per-certificate commands (openssl pipeline, one tlsa process
#   each) over the first K certificates only (default: all N); the report says so.
# Needs: openssl, hyperfine (apt-get install hyperfine).
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-1000}
for tool in openssl hyperfine; do
  command -v "$tool" >/dev/null || { echo "benches/hash.sh: $tool not found: apt-get install -y $tool" >&2; exit 1; }
done

cargo build --release --quiet
tlsa=$PWD/target/release/tlsa
dir=target/bench-hash/$n
if [[ ! -f $dir/done ]]; then
  echo "generating $n P-256 certificates in $dir ..."
  rm -rf "$dir"; mkdir -p "$dir"
  for i in $(seq 1 "$n"); do
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout /dev/null \
      -out "$dir/$i.pem" -subj "/CN=host$i.example" -days 90 2>/dev/null
  done
  touch "$dir/done"
fi

sample=${SAMPLE:-$n}
sample_files() { ls "$dir"/*.pem | sort -V | head -n "$sample"; }
pipeline() {
  for f in $(sample_files); do
    openssl x509 -in "$f" -pubkey -noout | openssl pkey -pubin -outform DER | openssl dgst -sha256 -r
  done
}
export -f pipeline sample_files; export dir tlsa sample

# Same answers first: the benchmark compares equal work.
diff <("$tlsa" hash $(sample_files) | cut -d' ' -f4) <(pipeline | cut -d' ' -f1) >/dev/null \
  || { echo "benches/hash.sh: tlsa and openssl disagree" >&2; exit 1; }

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
# The shell expands the file names (short, relative): one argument for
# hyperfine could not hold 10,000 paths.
hyperfine --warmup 1 --runs "${RUNS:-5}" --shell bash \
  --command-name "tlsa hash, one process, $n certificates" 'cd "$dir" && "$tlsa" hash *.pem'

hyperfine --warmup 0 --runs "${RUNS_SLOW:-2}" --shell bash \
  --command-name "openssl pipeline per certificate, $sample of the $n certificates" "pipeline" \
  --command-name "tlsa hash per certificate (one process each), $sample of the $n certificates" \
  'for f in $(sample_files); do "$tlsa" hash "$f"; done'
if [[ $sample != "$n" ]]; then
  echo "note: the per-certificate commands ran over $sample certificates; multiply by $n/$sample for all $n."
fi
