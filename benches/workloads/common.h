/* Shared helpers of the workload programs of `cargo xtask suite` (xtask/src/suite/workloads.rs
 * lists them with their arguments; the README's Performance section shows their results).
 *
 * Every program takes `<threads> <size...>` arguments, allocates only through malloc, calloc,
 * realloc and free (so that LD_PRELOAD swaps the allocator), checks the contents of every block
 * it frees, and prints `checksum: <hex>` at the end: a value that depends only on the arguments,
 * never on the allocator or on thread scheduling. A corrupted block ends the program with
 * exit status 4. */
#ifndef FERROC_WORKLOAD_COMMON_H
#define FERROC_WORKLOAD_COMMON_H

#define _GNU_SOURCE
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Helpers not every program uses. */
#define WL_FN static __attribute__((unused))

/* A live block and its size: the slots of the programs' regions and tables. */
typedef struct {
    void *p;
    size_t n;
} block_t;

/* splitmix64: a small, fast, deterministic generator. */
typedef struct {
    uint64_t state;
} rng_t;

static inline rng_t rng_seed(uint64_t a, uint64_t b) {
    rng_t r = {a * 0x9e3779b97f4a7c15ULL ^ (b + 0x632be59bd9b4e019ULL)};
    return r;
}

static inline uint64_t rng_next(rng_t *r) {
    uint64_t z = (r->state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* Uniform in [0, n). */
static inline uint64_t rng_below(rng_t *r, uint64_t n) {
    return (uint64_t)(((unsigned __int128)rng_next(r) * n) >> 64);
}

/* A small-object size in [min, 1024]: mostly small, as in compilers and symbolic math
 * (60% up to 64 bytes, 30% up to 256, 10% up to 1024). */
static inline size_t small_size(rng_t *r, size_t min) {
    uint64_t x = rng_below(r, 10);
    size_t hi = x < 6 ? 64 : x < 9 ? 256 : 1024;
    return min + (size_t)rng_below(r, hi - min + 1);
}

static inline uint64_t mix64(uint64_t x) {
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    return x;
}

WL_FN void die(const char *what) {
    fprintf(stderr, "workload error: %s\n", what);
    exit(4);
}

static inline void *xmalloc(size_t n) {
    void *p = malloc(n);
    if (p == NULL) {
        fprintf(stderr, "out of memory (%zu bytes)\n", n);
        exit(3);
    }
    return p;
}

/* Marks a block of at least 16 bytes: the tag at its start, its complement at its end. */
static inline void tag_block(void *p, size_t n, uint64_t tag) {
    uint64_t inv = ~tag;
    memcpy(p, &tag, 8);
    memcpy((char *)p + n - 8, &inv, 8);
}

/* The tag of a block marked by tag_block; ends the program if the marks disagree. */
static inline uint64_t check_block(const void *p, size_t n) {
    uint64_t tag, inv;
    memcpy(&tag, p, 8);
    memcpy(&inv, (const char *)p + n - 8, 8);
    if (tag != ~inv)
        die("a block's contents changed while it was live");
    return tag;
}

/* Puts a new block of a small size (small_size from 16 bytes), tagged, in slot `s`. */
static inline void put_small(block_t *s, rng_t *r) {
    s->n = small_size(r, 16);
    s->p = xmalloc(s->n);
    tag_block(s->p, s->n, rng_next(r));
}

/* Fills the `n` slots with new small blocks (put_small). */
static inline void fill_small(block_t *slots, size_t n, rng_t *r) {
    for (size_t i = 0; i < n; i++)
        put_small(&slots[i], r);
}

/* Picks one of the `n` slots at random, checks and frees its block and puts a new small one in
 * its place (put_small); returns the freed block's tag. */
static inline uint64_t replace_small(block_t *slots, size_t n, rng_t *r) {
    block_t *s = &slots[rng_below(r, n)];
    uint64_t tag = check_block(s->p, s->n);
    free(s->p);
    put_small(s, r);
    return tag;
}

WL_FN long arg_long(int argc, char **argv, int i, long def) {
    if (i >= argc)
        return def;
    char *end;
    long v = strtol(argv[i], &end, 10);
    if (*end != '\0' || v <= 0) {
        fprintf(stderr, "argument %d must be a positive integer, not `%s`\n", i, argv[i]);
        exit(2);
    }
    return v;
}

WL_FN void print_checksum(uint64_t c) {
    printf("checksum: %016llx\n", (unsigned long long)c);
}

/* Resident memory now, from /proc/self/statm, as `rss_kib: N`. */
WL_FN void print_rss(const char *label) {
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long size = 0, resident = 0;
    if (f == NULL || fscanf(f, "%lu %lu", &size, &resident) != 2)
        die("cannot read /proc/self/statm");
    fclose(f);
    printf("%s: %lu\n", label, resident * (unsigned long)(sysconf(_SC_PAGESIZE) / 1024));
}

WL_FN void spawn(pthread_t *t, void *(*fn)(void *), void *arg) {
    if (pthread_create(t, NULL, fn, arg) != 0)
        die("pthread_create failed");
}

#endif
