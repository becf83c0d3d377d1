#!/usr/bin/env bash
# Benchmark: `kmortem oops --json` on a fleet log against `grep -c 'Call Trace'` on the same file
# in the same run (grep writes its count to a file: GNU grep with stdout on /dev/null stops at the
# first match). Prints MB/s, the time ratio and peak RSS (from /usr/bin/time -v).
# Usage: bench/fleetlog.sh [SIZE_MB [DENSITY [RUNS]]]   (default 1024 sparse 1; DENSITY is `sparse`
# or `dense`, see bench/gen_fleetlog.py; with RUNS > 1 the median time of each is taken; the log
# goes to target/bench/, not git)
set -euo pipefail
cd "$(dirname "$0")/.."
size=${1:-1024}
density=${2:-sparse}
runs=${3:-1}
log=target/bench/fleet-${size}M-${density}.log
mkdir -p target/bench
[ -s "$log" ] || python3 bench/gen_fleetlog.py "$log" "$size" "$density"
cargo build --release -q -p kmortem
bytes=$(stat -c %s "$log")
cat "$log" > /dev/null  # warm the page cache for both runs

measure() {  # name, command...
  local name=$1; shift
  /usr/bin/time -v "$@" > target/bench/$name.out 2> target/bench/$name.time
  local wall rss
  wall=$(awk -F': ' '/Elapsed \(wall clock\)/ {print $2}' target/bench/$name.time)
  rss=$(awk -F': ' '/Maximum resident set size/ {print $2}' target/bench/$name.time)
  # h:mm:ss or m:ss.ss -> seconds
  secs=$(echo "$wall" | awk -F: '{s=0; for(i=1;i<=NF;i++) s=s*60+$i; print s}')
  echo "$name $secs $rss"
}
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
g_all=(); k_all=(); g_rss=0; k_rss=0
for _ in $(seq "$runs"); do
  read -r _ s r < <(measure grep grep -c 'Call Trace' "$log"); g_all+=("$s"); g_rss=$r
  read -r _ s r < <(measure kmortem target/release/kmortem oops --json "$log"); k_all+=("$s")
  [ "$r" -gt "$k_rss" ] && k_rss=$r
done
g_s=$(printf '%s\n' "${g_all[@]}" | median)
k_s=$(printf '%s\n' "${k_all[@]}" | median)
reports=$(grep -c '^  "title"' target/bench/kmortem.out || true)
traces=$(cat target/bench/grep.out)
awk -v d="$density" -v b="$bytes" -v gs="$g_s" -v ks="$k_s" -v gr="$g_rss" -v kr="$k_rss" -v n="$reports" -v t="$traces" 'BEGIN {
  mb = b / 1048576
  printf "input: %.0f MB (%s), %d Call Trace lines, %d reports found\n", mb, d, t, n
  printf "grep -c:        %6.2f s  %8.1f MB/s  peak RSS %6.1f MB\n", gs, mb / gs, gr / 1024
  printf "kmortem oops:   %6.2f s  %8.1f MB/s  peak RSS %6.1f MB\n", ks, mb / ks, kr / 1024
  printf "ratio kmortem/grep time: %.2fx (target <= 3x), RSS target < 100 MB\n", ks / gs
}'
