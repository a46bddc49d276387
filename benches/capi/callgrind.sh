#!/usr/bin/env bash
# Instructions per small malloc+free pair under callgrind, for Ferroc's libferroc.so and the
# allocators Debian ships (mimalloc, jemalloc, tcmalloc) and glibc's malloc, with the calls
# to __tls_get_addr per pair. A measurement, not a test.
#
# Each allocator runs benches/capi/pairs.c twice, with BASE and BASE + PAIRS pairs, under
# LD_PRELOAD; the difference divided by PAIRS is the cost of one pair (start-up, the first
# allocation and exit cancel out).
#
# Two cases: `kept` (another block of the size stays allocated, so the pair never empties its
# page: the common case) and `alone` (each free empties the page).
#
# Usage: benches/capi/callgrind.sh [size ...]   (default sizes: 16 64)
# Environment: FERROC_SO (default: built with `cargo xtask capi`), PAIRS (default 200000),
# BASE (default 10000), KEEP (a directory to keep the callgrind files in).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
sizes=("$@")
((${#sizes[@]} > 0)) || sizes=(16 64)
pairs=${PAIRS:-200000}
base=${BASE:-10000}

for tool in valgrind cc; do
    command -v "$tool" >/dev/null || { echo "callgrind.sh: $tool is not installed" >&2; exit 1; }
done

if [[ -z ${FERROC_SO:-} ]]; then
    (cd "$root" && cargo xtask capi >/dev/null)
    FERROC_SO=$root/target/ferroc-capi/lib/libferroc.so
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cc -O2 -fno-builtin -o "$work/pairs" "$here/pairs.c"

libdir=/usr/lib/x86_64-linux-gnu
allocators=(
    "ferroc $FERROC_SO"
    "mimalloc $libdir/libmimalloc.so.2"
    "jemalloc $libdir/libjemalloc.so.2"
    "tcmalloc $libdir/libtcmalloc_minimal.so.4"
    "glibc -"
)

# Runs `pairs N SIZE MODE` under callgrind; prints "<instructions> <calls to __tls_get_addr>".
measure() {
    local lib=$1 n=$2 size=$3 mode=$4 out="$work/cg.out"
    local env=()
    [[ $lib == - ]] || env=(env "LD_PRELOAD=$lib")
    "${env[@]}" valgrind --tool=callgrind --callgrind-out-file="$out" -q \
        "$work/pairs" "$n" "$size" "$mode" 2>/dev/null
    [[ -z ${KEEP:-} ]] || cp "$out" "$KEEP/$(basename "$lib").$size.$mode.$n.out"
    awk '
        /^summary:/ { ir = $2 }
        /^cfn=/ {
            # cfn=(id) name, or cfn=(id) once the name has been given.
            id = $1; sub(/^cfn=/, "", id)
            if (NF > 1) { name[id] = $2 }
            current = name[id]
        }
        /^calls=/ {
            split($1, c, "="); if (current == "__tls_get_addr") tls += c[2]
        }
        END { printf "%d %d\n", ir, tls }
    ' "$out"
}

[[ -z ${KEEP:-} ]] || mkdir -p "$KEEP"
printf '%-10s %6s %6s %10s %20s\n' allocator size case "Ir/pair" "__tls_get_addr/pair"
for entry in "${allocators[@]}"; do
    read -r name lib <<<"$entry"
    if [[ $lib != - && ! -e $lib ]]; then
        printf '%-10s (not installed: %s)\n' "$name" "$lib"
        continue
    fi
    for size in "${sizes[@]}"; do
        for mode in kept alone; do
            read -r ir1 tls1 < <(measure "$lib" "$base" "$size" "$mode")
            read -r ir2 tls2 < <(measure "$lib" "$((base + pairs))" "$size" "$mode")
            awk -v n="$name" -v s="$size" -v m="$mode" -v a="$ir1" -v b="$ir2" \
                -v t1="$tls1" -v t2="$tls2" -v p="$pairs" \
                'BEGIN { printf "%-10s %6d %6s %10.2f %20.3f\n", n, s, m, (b - a) / p, (t2 - t1) / p }'
        done
    done
done
