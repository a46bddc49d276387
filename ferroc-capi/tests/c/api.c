/* Calls every fe_* function of ferroc.h. Valid C and C++: the tests compile it as both, so
 * the header works (and links) from either language. */
#include "ferroc.h"
#include "ferroc.h" /* the include guard works */

#include <errno.h>
#include <limits.h>
#include <stdint.h>

#include "check.h"

#ifndef EXPECTED_VERSION
#error "EXPECTED_VERSION (major * 10000 + minor * 100 + patch) must be defined"
#endif

static void fill(void *p, size_t n, unsigned char v) { memset(p, v, n); }

static int all(const void *p, size_t n, unsigned char v) {
    const unsigned char *b = (const unsigned char *)p;
    for (size_t i = 0; i < n; i++)
        if (b[i] != v) return 0;
    return 1;
}

int main(void) {
    size_t page = (size_t)sysconf(_SC_PAGESIZE);

    void *p = fe_malloc(hide(100));
    CHECK(p != NULL);
    CHECK(fe_malloc_usable_size(p) >= 100);
    fill(p, 100, 0x11);

    p = fe_realloc(p, hide(10000));
    CHECK(p != NULL && all(p, 100, 0x11));
    CHECK(fe_malloc_usable_size(p) >= 10000);
    p = fe_reallocarray(p, hide(30), hide(1000));
    CHECK(p != NULL && all(p, 100, 0x11) && fe_malloc_usable_size(p) >= 30000);
    errno = 0;
    CHECK(fe_reallocarray(p, hide(SIZE_MAX / 2), hide(3)) == NULL && errno == ENOMEM);
    CHECK(all(p, 100, 0x11));
    fe_free(p);

    unsigned char *z = (unsigned char *)fe_calloc(hide(1000), hide(3));
    CHECK(z != NULL && all(z, 3000, 0));
    fe_free_sized(z, 3000);
    errno = 0;
    CHECK(fe_calloc(hide(SIZE_MAX / 4), hide(8)) == NULL && errno == ENOMEM);

    void *a = NULL;
    CHECK(fe_posix_memalign(&a, 256, hide(1000)) == 0);
    CHECK(a != NULL && (uintptr_t)a % 256 == 0);
    fe_free_aligned_sized(a, 256, 1000);
    void *untouched = (void *)&page;
    a = untouched;
    CHECK(fe_posix_memalign(&a, 24, 8) == EINVAL && a == untouched);

    a = fe_aligned_alloc(4096, hide(5000));
    CHECK(a != NULL && (uintptr_t)a % 4096 == 0);
    fe_free(a);
    a = fe_memalign(1 << 20, hide(10));
    CHECK(a != NULL && (uintptr_t)a % (1 << 20) == 0);
    fe_free(a);
    a = fe_valloc(hide(10));
    CHECK(a != NULL && (uintptr_t)a % page == 0);
    fe_free(a);
    a = fe_pvalloc(hide(page + 1));
    CHECK(a != NULL && (uintptr_t)a % page == 0 && fe_malloc_usable_size(a) >= 2 * page);
    fe_free(a);

    CHECK(fe_malloc_usable_size(NULL) == 0);
    fe_free(NULL);

    char *s = fe_strdup("ferroc");
    CHECK(s != NULL && strcmp(s, "ferroc") == 0 && fe_malloc_usable_size(s) >= 7);
    fe_free(s);
    s = fe_strndup("allocator", 5);
    CHECK(s != NULL && strcmp(s, "alloc") == 0);
    fe_free(s);
    s = fe_strndup("ab", 100);
    CHECK(s != NULL && strcmp(s, "ab") == 0);
    fe_free(s);

    char cwd[PATH_MAX];
    CHECK(getcwd(cwd, sizeof cwd) != NULL);
    char *r = fe_realpath(".", NULL);
    CHECK(r != NULL && strcmp(r, cwd) == 0 && fe_malloc_usable_size(r) > strlen(cwd));
    fe_free(r);
    char buf[PATH_MAX];
    CHECK(fe_realpath(".", buf) == buf && strcmp(buf, cwd) == 0);
    errno = 0;
    CHECK(fe_realpath("/nonexistent/ferroc/path", NULL) == NULL && errno == ENOENT);

    /* Memory to give back: many pages' worth of freed blocks. */
    enum { N = 4096 };
    static void *blocks[N];
    for (int i = 0; i < N; i++) {
        blocks[i] = fe_malloc(hide(4000));
        CHECK(blocks[i] != NULL);
        fill(blocks[i], 4000, 0x5a);
    }
    for (int i = 0; i < N; i++) fe_free(blocks[i]);
    fe_collect(false);
    fe_collect(true);
    for (int i = 0; i < N; i++) blocks[i] = fe_malloc(hide(4000));
    for (int i = 0; i < N; i++) fe_free(blocks[i]);
    CHECK(fe_malloc_trim(0) == 1);

    /* Introspection (tests/c/introspect.c tests it in depth). */
    void *q = fe_malloc(hide(48));
    CHECK(q != NULL && fe_heap_contains(q) && fe_is_ferroc_pointer(q));
    CHECK(!fe_heap_contains(&page) && !fe_is_ferroc_pointer(&page));
    CHECK(fe_heap_visit_blocks(NULL, NULL));
    fe_free(q);
    /* Options (tested in depth by options*.c). */
    CHECK(fe_option_set(FE_OPTION_PURGE_DELAY, 25) == 0);
    CHECK(fe_option_get(FE_OPTION_PURGE_DELAY) == 25);
    CHECK(fe_mallopt(-1 /* M_TRIM_THRESHOLD */, 0) == 1);
    CHECK(fe_option_get(FE_OPTION_PURGE_DELAY) == 0);

    fe_stats_print();
    {
        /* glibc's introspection: one huge block shows. */
        void *big = fe_malloc(hide(1 << 20));
        struct fe_mallinfo2 m2 = fe_mallinfo2();
        struct fe_mallinfo m = fe_mallinfo();
        CHECK(big != NULL && m2.hblks >= 1 && m2.uordblks >= (1 << 20) && m.hblks >= 1);
        fe_free(big);
        fe_malloc_stats();
        CHECK(fe_malloc_info(1, stdout) == EINVAL);
        CHECK(fe_malloc_info(0, stdout) == 0);
    }
    CHECK(fe_version() == EXPECTED_VERSION);
    printf("api ok: version %d\n", fe_version());
    return 0;
}
