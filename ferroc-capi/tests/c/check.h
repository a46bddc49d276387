/* Helpers shared by the C and C++ test programs. */
#ifndef FERROC_TEST_CHECK_H
#define FERROC_TEST_CHECK_H

#include <dlfcn.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* A failed check names itself and ends the program with status 1. */
#define CHECK(cond)                                                                    \
    do {                                                                               \
        if (!(cond)) {                                                                 \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);   \
            exit(1);                                                                   \
        }                                                                              \
    } while (0)

/* Hides a value from the optimiser, so no call is folded at compile time. */
static inline size_t hide(size_t x) {
    __asm__ volatile("" : "+r"(x));
    return x;
}

static inline void *hide_ptr(void *p) {
    __asm__ volatile("" : "+r"(p));
    return p;
}

/* Ferroc's malloc_usable_size: linked in (FERROC_LINKED) or looked up in the preloaded
 * library. It is 0 for a pointer Ferroc did not allocate, so it tells where a block came
 * from. */
#ifdef FERROC_LINKED
#include "ferroc.h"
static inline size_t ferroc_usable(const void *p) { return fe_malloc_usable_size(p); }
#else
static inline size_t ferroc_usable(const void *p) {
    static size_t (*fn)(const void *);
    if (!fn) {
        fn = (size_t (*)(const void *))dlsym(RTLD_DEFAULT, "fe_malloc_usable_size");
        if (!fn) {
            fprintf(stderr, "fe_malloc_usable_size not found: Ferroc is not loaded\n");
            exit(1);
        }
    }
    return fn(p);
}
#endif

/* Whether malloc is Ferroc's. */
static inline int malloc_is_ferroc(void) {
    void *p = malloc(hide(24));
    int yes = p && ferroc_usable(p) >= 24;
    free(p);
    return yes;
}

/* Writes a line to standard output at once, without stdio (safe after exit has begun). */
static inline void say(const char *s) {
    size_t n = strlen(s);
    while (n > 0) {
        ssize_t w = write(1, s, n);
        if (w <= 0) return;
        s += w;
        n -= (size_t)w;
    }
}

/* A small fast PRNG (xorshift64*). */
static inline uint64_t rng_next(uint64_t *s) {
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 0x2545F4914F6CDD1DULL;
}

/* Resident set size of this process in bytes. */
static inline size_t rss_bytes(void) {
    FILE *f = fopen("/proc/self/statm", "r");
    long pages = 0, resident = 0;
    if (f) {
        if (fscanf(f, "%ld %ld", &pages, &resident) != 2) resident = 0;
        fclose(f);
    }
    return (size_t)resident * (size_t)sysconf(_SC_PAGESIZE);
}

#endif
