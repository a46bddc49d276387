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
