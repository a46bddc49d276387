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

#ifdef __cplusplus
}
#endif

#endif /* FERROC_H */
