/*
 * ferroc.h: the C API of Ferroc, a lock-free multi-threaded memory allocator.
 *
 * Link with -lferroc (pkg-config --cflags --libs ferroc). Every fe_* function follows the C
 * contract of the standard function of the same name: failure returns NULL with
 * errno = ENOMEM (EINVAL where POSIX says so), fe_free never changes errno, and
 * fe_realloc(p, 0) frees p and returns NULL, as glibc's realloc does.
 *
 * libferroc.so also replaces malloc, free, ..., operator new and delete, so
 * LD_PRELOAD=libferroc.so runs any program on Ferroc.
 */
#ifndef FERROC_H
#define FERROC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

void *fe_malloc(size_t size);
void *fe_calloc(size_t count, size_t size);
void *fe_realloc(void *ptr, size_t size);
void *fe_reallocarray(void *ptr, size_t count, size_t size);
void fe_free(void *ptr);
void fe_free_sized(void *ptr, size_t size);
void fe_free_aligned_sized(void *ptr, size_t alignment, size_t size);
int fe_posix_memalign(void **out, size_t alignment, size_t size);
void *fe_aligned_alloc(size_t alignment, size_t size);
void *fe_memalign(size_t alignment, size_t size);
void *fe_valloc(size_t size);
void *fe_pvalloc(size_t size);
size_t fe_malloc_usable_size(const void *ptr);
char *fe_strdup(const char *s);
char *fe_strndup(const char *s, size_t n);
char *fe_realpath(const char *path, char *resolved);

/* Collects the calling thread's heap; with force, also takes over memory of exited threads
 * and returns free memory to the OS at once. */
void fe_collect(bool force);
/* malloc_trim: collects and purges; 1 if memory went back to the OS. */
int fe_malloc_trim(size_t pad);
/* Prints statistics to stderr (built with the `stat` feature; otherwise a one-line note). */
void fe_stats_print(void);
/* major * 10000 + minor * 100 + patch. */
int fe_version(void);

/* Introspection.
 * fe_heap_visit_blocks calls visitor(block, usable_size, arg) for every live block of the
 * calling thread's heap, in address order, until it returns false; the result is false if the
 * visitor stopped the walk. It never allocates; the visitor may allocate and free (blocks
 * allocated or freed meanwhile may or may not be reported). Huge blocks (larger than an
 * eighth of a slab: 512 KiB by default) belong to no thread's heap and are not visited.
 * fe_heap_contains: whether p points into (start to usable size) a live block of the calling
 * thread's heap: false for freed blocks, other threads' blocks, huge blocks, foreign pointers.
 * fe_is_ferroc_pointer: whether p points into memory Ferroc got from the OS (any thread's,
 * huge blocks included, live or free).
 * None of them reads through a pointer that is not Ferroc's. */
bool fe_heap_visit_blocks(bool (*visitor)(void *block, size_t size, void *arg), void *arg);
bool fe_heap_contains(const void *p);
bool fe_is_ferroc_pointer(const void *p);

/* ---- Runtime options ----
 * Each option is also read from its environment variable when the first thread allocates
 * (FERROC_PURGE_DELAY, FERROC_VERBOSE, FERROC_SHOW_STATS, FERROC_LARGE_PAGES,
 * FERROC_EAGER_COMMIT, FERROC_RESERVE, FERROC_INVALID_FREE). Before that, fe_option_set
 * changes the start-up value, which the environment overrides; after it, the run-time
 * options (purge delay, verbose, show stats, invalid free) take effect at once and the
 * start-up ones (large pages, eager commit, reserve) are refused with EBUSY. */
typedef enum fe_option_e {
    FE_OPTION_PURGE_DELAY = 0,  /* ms before freed memory goes back to the OS; 0 at once,
                                   negative never (default 10) */
    FE_OPTION_VERBOSE = 1,      /* print the options at start-up and each change (0) */
    FE_OPTION_SHOW_STATS = 2,   /* print the statistics at exit (0) */
    FE_OPTION_LARGE_PAGES = 3,  /* back arenas with large OS pages (0; start-up only) */
    FE_OPTION_EAGER_COMMIT = 4, /* commit whole arenas when made (0; start-up only) */
    FE_OPTION_RESERVE = 5,      /* bytes of arenas reserved at start-up (0; start-up only) */
    FE_OPTION_INVALID_FREE = 6  /* free() of a pointer not Ferroc's: FE_INVALID_FREE_* */
} fe_option_t;

/* Values of FE_OPTION_INVALID_FREE (FERROC_INVALID_FREE=abort|warn|ignore). */
#define FE_INVALID_FREE_ABORT 0 /* message on stderr, then abort(), as glibc (default) */
#define FE_INVALID_FREE_WARN 1  /* message on stderr, the pointer is left alone */
#define FE_INVALID_FREE_IGNORE 2

/* Sets an option: 0, EINVAL (unknown option or bad value) or EBUSY (start-up only, and
 * the allocator has started). */
int fe_option_set(fe_option_t option, long value);
/* The value in force (booleans 0/1); 0 with errno = EINVAL for an unknown option. */
long fe_option_get(fe_option_t option);
/* mallopt: M_TRIM_THRESHOLD 0 purges at once, negative never, positive the default delay;
 * M_CHECK_ACTION sets the invalid-free policy (bit 2 abort, else bit 1 warn, else ignore);
 * every other parameter is accepted and ignored. Returns 1. */
int fe_mallopt(int param, int value);

/* glibc's malloc introspection, answered by Ferroc (libferroc.so also exports them as
 * mallinfo2, mallinfo, malloc_stats and malloc_info). The structures have glibc's layout.
 * arena: bytes committed for slabs; ordblks: free slabs still committed; hblks, hblkhd: huge
 * blocks alive and the bytes of their runs; uordblks: bytes in live blocks (built without the
 * `stat` feature: bytes of slabs and runs in use, an upper bound); usmblks: its peak;
 * fordblks: committed bytes not in uordblks; keepcost: what fe_malloc_trim would give back
 * now; smblks, fsmblks: 0. */
struct fe_mallinfo2 {
    size_t arena, ordblks, smblks, hblks, hblkhd, usmblks, fsmblks, uordblks, fordblks, keepcost;
};
/* The same with int fields, each saturating at INT_MAX. */
struct fe_mallinfo {
    int arena, ordblks, smblks, hblks, hblkhd, usmblks, fsmblks, uordblks, fordblks, keepcost;
};
struct fe_mallinfo2 fe_mallinfo2(void);
struct fe_mallinfo fe_mallinfo(void);
/* Prints Ferroc's statistics table (the FERROC_SHOW_STATS one) to stderr, without allocating. */
void fe_malloc_stats(void);
/* Writes Ferroc's figures to fp as XML in glibc's shape; EINVAL unless options is 0. */
int fe_malloc_info(int options, FILE *fp);

#ifdef __cplusplus
}
#endif

#endif /* FERROC_H */
