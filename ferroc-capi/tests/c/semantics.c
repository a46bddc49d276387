/* The C semantics of the override, one check per argument: `semantics <check>`. Run with
 * LD_PRELOAD=libferroc.so (or linked with the override). */
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <stdbool.h>
#include <sys/mman.h>

#include "check.h"

/* glibc's internal names, exported by libc.so.6 and replaced by Ferroc. */
extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void __libc_free(void *);
extern void *__libc_memalign(size_t, size_t);
extern void *__libc_valloc(size_t);
extern void *__libc_pvalloc(size_t);
/* Not exported by every glibc: looked up (Ferroc's, when it is loaded). */
static int __posix_memalign(void **out, size_t align, size_t size) {
    static int (*fn)(void **, size_t, size_t);
    if (!fn) fn = (int (*)(void **, size_t, size_t))dlsym(RTLD_DEFAULT, "__posix_memalign");
    CHECK(fn != NULL);
    return fn(out, align, size);
}

#define SENTINEL 12345

static size_t page_size(void) { return (size_t)sysconf(_SC_PAGESIZE); }

static bool all_bytes(const void *p, size_t n, unsigned char v) {
    const unsigned char *b = (const unsigned char *)p;
    for (size_t i = 0; i < n; i++)
        if (b[i] != v) return false;
    return true;
}

static int cmp_ptr(const void *a, const void *b) {
    uintptr_t x = *(const uintptr_t *)a, y = *(const uintptr_t *)b;
    return x < y ? -1 : x > y;
}

static void check_malloc0(void) {
    enum { N = 1000 };
    static void *p[N];
    for (int i = 0; i < N; i++) {
        p[i] = malloc(hide(0));
        CHECK(p[i] != NULL);
        CHECK(ferroc_usable(p[i]) > 0);
    }
    qsort(p, N, sizeof p[0], cmp_ptr);
    for (int i = 1; i < N; i++) CHECK(p[i] != p[i - 1]);
    for (int i = 0; i < N; i++) free(p[i]);
    /* calloc(0, n), realloc(NULL, 0) and aligned_alloc(a, 0) are freeable too. */
    void *c = calloc(hide(0), hide(8));
    CHECK(c != NULL);
    free(c);
    void *a = aligned_alloc(64, hide(0));
    CHECK(a != NULL && (uintptr_t)a % 64 == 0);
    free(a);
    void *(*const realloc_fn)(void *, size_t) = realloc;
    void *r = realloc_fn(NULL, hide(0));
    void *r2 = realloc_fn(NULL, hide(0));
    CHECK(r != NULL && r2 != NULL && r != r2 && ferroc_usable(r) > 0);
    free(r);
    free(r2);
}

static void check_free_null(void) {
    errno = SENTINEL;
    free(NULL);
    CHECK(errno == SENTINEL);
    CHECK(malloc_usable_size(NULL) == 0);
    void *(*const realloc_fn)(void *, size_t) = realloc;
    void *p = realloc_fn(NULL, hide(40)); /* realloc(NULL, n) is malloc(n) */
    CHECK(p != NULL && ferroc_usable(p) >= 40);
    free(p);
}

static void check_usable_null(void) { CHECK(malloc_usable_size(NULL) == 0); }

#define EXPECT_ENOMEM(expr)                                                             \
    do {                                                                                \
        errno = 0;                                                                      \
        CHECK((expr) == NULL);                                                          \
        CHECK(errno == ENOMEM);                                                         \
    } while (0)

static void check_enomem(void) {
    EXPECT_ENOMEM(malloc(hide(SIZE_MAX)));
    EXPECT_ENOMEM(malloc(hide((size_t)PTRDIFF_MAX + 1)));
    EXPECT_ENOMEM(malloc(hide((size_t)PTRDIFF_MAX)));
    EXPECT_ENOMEM(malloc(hide((size_t)1 << 62)));
    EXPECT_ENOMEM(calloc(hide(SIZE_MAX / 2 + 2), hide(2)));
    EXPECT_ENOMEM(calloc(hide((size_t)1 << 33), hide((size_t)1 << 33)));
    EXPECT_ENOMEM(calloc(hide(1), hide(SIZE_MAX)));
    EXPECT_ENOMEM(aligned_alloc(64, hide(SIZE_MAX)));
    EXPECT_ENOMEM(memalign(4096, hide(SIZE_MAX - 100)));
    EXPECT_ENOMEM(valloc(hide(SIZE_MAX)));
    EXPECT_ENOMEM(pvalloc(hide(SIZE_MAX)));
    EXPECT_ENOMEM(reallocarray(NULL, hide(SIZE_MAX / 3), hide(4)));

    /* Failing realloc/reallocarray leave the block as it was. */
    char *p = (char *)malloc(hide(100));
    CHECK(p != NULL);
    memset(p, 0x3c, 100);
    EXPECT_ENOMEM(realloc(p, hide(SIZE_MAX)));
    EXPECT_ENOMEM(realloc(p, hide((size_t)PTRDIFF_MAX + 1)));
    EXPECT_ENOMEM(reallocarray(p, hide(SIZE_MAX / 2), hide(3)));
    EXPECT_ENOMEM(reallocarray(p, hide((size_t)1 << 40), hide((size_t)1 << 40)));
    CHECK(all_bytes(p, 100, 0x3c));
    CHECK(malloc_usable_size(p) >= 100);
    free(p);

    void *untouched = &p;
    void *out = untouched;
    CHECK(posix_memalign(&out, 64, hide(SIZE_MAX)) == ENOMEM);
    CHECK(out == untouched);
}

static void *remote_block;
static void *alloc_thread(void *arg) {
    (void)arg;
    remote_block = malloc(hide(1000));
    return NULL;
}

static void check_free_keeps_errno(void) {
    size_t sizes[] = {1, 16, 100, 1000, 20000, 300000, 3 << 20, 64 << 20, 300 << 20};
    size_t n = sizeof sizes / sizeof sizes[0];
    for (size_t i = 0; i < n; i++) {
        char *p = (char *)malloc(hide(sizes[i]));
        CHECK(p != NULL);
        memset(p, 1, sizes[i]); /* committed, so freeing gives memory back */
        errno = SENTINEL;
        free(p);
        CHECK(errno == SENTINEL);
    }
    /* Whole pages of blocks, emptied: their pages are retired and purged. */
    enum { N = 20000 };
    static void *blocks[N];
    for (int i = 0; i < N; i++) blocks[i] = malloc(hide(2000));
    errno = SENTINEL;
    for (int i = 0; i < N; i++) free(blocks[i]);
    CHECK(errno == SENTINEL);
    CHECK(malloc_trim(0) == 1);
    errno = SENTINEL;
    free(malloc(hide(500 << 20))); /* a huge block straight back to the OS */
    CHECK(errno == SENTINEL);
    /* A block of another (exited) thread. */
    pthread_t t;
    CHECK(pthread_create(&t, NULL, alloc_thread, NULL) == 0);
    CHECK(pthread_join(t, NULL) == 0);
    errno = SENTINEL;
    free(remote_block);
    CHECK(errno == SENTINEL);
    /* Foreign memory. */
    static char not_ours[64];
    free(not_ours + 16);
    CHECK(errno == SENTINEL);
    /* The other names of free. */
    void (*cfree_fn)(void *) = (void (*)(void *))dlsym(RTLD_DEFAULT, "cfree");
    void (*sized)(void *, size_t) = (void (*)(void *, size_t))dlsym(RTLD_DEFAULT, "free_sized");
    CHECK(cfree_fn && sized);
    cfree_fn(malloc(hide(64)));
    sized(malloc(hide(64 << 20)), 64 << 20);
    __libc_free(malloc(hide(32)));
    CHECK(errno == SENTINEL);
}

static void check_calloc_zero(void) {
    size_t sizes[] = {1, 8, 16, 24, 100, 1000, 4096, 10000, 65536, 300000, 1 << 20, 5 << 20, 33 << 20};
    enum { K = sizeof sizes / sizeof sizes[0], COPIES = 8 };
    static void *blocks[K][COPIES];
    for (int round = 0; round < 3; round++) {
        /* Dirty blocks of every size, free them, then calloc the same sizes. */
        for (int i = 0; i < K; i++)
            for (int j = 0; j < COPIES; j++) {
                blocks[i][j] = malloc(hide(sizes[i]));
                CHECK(blocks[i][j] != NULL);
                memset(blocks[i][j], 0xa5, malloc_usable_size(blocks[i][j]));
            }
        for (int i = 0; i < K; i++)
            for (int j = 0; j < COPIES; j++) free(blocks[i][j]);
        for (int i = 0; i < K; i++)
            for (int j = 0; j < COPIES; j++) {
                size_t n = sizes[i];
                unsigned char *c;
                if (j % 3 == 0)
                    c = (unsigned char *)calloc(hide(n), 1);
                else if (j % 3 == 1)
                    c = (unsigned char *)calloc(1, hide(n));
                else
                    c = (unsigned char *)calloc(hide((n + 7) / 8), 8);
                CHECK(c != NULL);
                CHECK(all_bytes(c, n, 0));
                blocks[i][j] = c;
            }
        for (int i = 0; i < K; i++)
            for (int j = 0; j < COPIES; j++) {
                memset(blocks[i][j], 0x5a, malloc_usable_size(blocks[i][j]));
                free(blocks[i][j]);
            }
    }
    void *c = __libc_calloc(hide(100), hide(10));
    CHECK(c != NULL && all_bytes(c, 1000, 0) && ferroc_usable(c) >= 1000);
    free(c);
}

static void fill_pattern(unsigned char *p, size_t n, unsigned seed) {
    for (size_t i = 0; i < n; i++) p[i] = (unsigned char)(i * 31 + seed);
}

static bool has_pattern(const unsigned char *p, size_t n, unsigned seed) {
    for (size_t i = 0; i < n; i++)
        if (p[i] != (unsigned char)(i * 31 + seed)) return false;
    return true;
}

static void check_realloc(void) {
    /* Growth from 1 byte to 64 MiB and back, contents kept. */
    unsigned char *p = (unsigned char *)realloc(NULL, hide(1));
    CHECK(p != NULL && ferroc_usable(p) >= 1);
    size_t n = 1;
    fill_pattern(p, n, 7);
    while (n < ((size_t)64 << 20)) {
        size_t m = n * 2 + 3;
        p = (unsigned char *)realloc(p, hide(m));
        CHECK(p != NULL && malloc_usable_size(p) >= m);
        CHECK(has_pattern(p, n, 7));
        fill_pattern(p, m, 7);
        n = m;
    }
    while (n > 1) {
        size_t m = n / 3;
        if (m == 0) m = 1;
        p = (unsigned char *)realloc(p, hide(m));
        CHECK(p != NULL && malloc_usable_size(p) >= m);
        CHECK(has_pattern(p, m, 7));
        n = m;
    }
    /* In-place growth within the usable size keeps the block. */
    unsigned char *q = (unsigned char *)malloc(hide(100));
    size_t usable = malloc_usable_size(q);
    CHECK(realloc(q, hide(usable)) == q);
    free(q);
    free(p);

    /* realloc(p, 0) frees p and returns NULL (as glibc), leaving errno alone: doing it many
     * times does not grow the process. */
    size_t before = rss_bytes();
    for (int i = 0; i < 200000; i++) {
        void *b = malloc(hide(4000));
        CHECK(b != NULL);
        memset(b, 1, 4000);
        errno = SENTINEL;
        CHECK(realloc(b, hide(0)) == NULL);
        CHECK(errno == SENTINEL);
    }
    size_t after = rss_bytes();
    CHECK(after < before + (64 << 20)); /* 800 MB if the blocks were kept */

    void *g = __libc_realloc(__libc_malloc(hide(10)), hide(5000));
    CHECK(g != NULL && ferroc_usable(g) >= 5000);
    free(g);
}

static void check_posix_memalign(void) {
    void *untouched = &untouched;
    size_t bad[] = {0, 1, 2, 3, 4, 12, 24, 40, 48, 96, 1000, 4095, 4097, (size_t)1 << 63 | 8, SIZE_MAX};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        void *p = untouched;
        errno = SENTINEL;
        CHECK(posix_memalign(&p, bad[i], 100) == EINVAL);
        CHECK(p == untouched);
        CHECK(__posix_memalign(&p, bad[i], 0) == EINVAL);
        CHECK(p == untouched);
    }
    for (size_t a = sizeof(void *); a <= ((size_t)256 << 20); a *= 2) {
        size_t sizes[] = {0, 1, a, a + 1};
        for (int s = 0; s < 4; s++) {
            void *p = untouched;
            CHECK(posix_memalign(&p, a, hide(sizes[s])) == 0);
            CHECK(p != NULL && p != untouched && (uintptr_t)p % a == 0);
            CHECK(ferroc_usable(p) >= sizes[s]);
            if (sizes[s]) {
                ((char *)p)[0] = 1;
                ((char *)p)[sizes[s] - 1] = 1;
            }
            free(p);
        }
    }
    void *p = untouched;
    CHECK(posix_memalign(&p, (size_t)1 << 62, 1) == ENOMEM);
    CHECK(p == untouched);
}

static void check_aligned(void) {
    for (size_t a = 1; a <= ((size_t)256 << 20); a *= 2) {
        size_t sizes[] = {1, a, a * 2 + 8};
        for (int s = 0; s < 3; s++) {
            size_t n = sizes[s];
            if (n > ((size_t)300 << 20)) continue;
            char *p = (char *)aligned_alloc(a, hide(n));
            CHECK(p != NULL && (uintptr_t)p % a == 0 && malloc_usable_size(p) >= n);
            p[0] = 1;
            p[n - 1] = 1;
            free(p);
            p = (char *)memalign(a, hide(n));
            CHECK(p != NULL && (uintptr_t)p % a == 0 && malloc_usable_size(p) >= n);
            p[0] = 1;
            p[n - 1] = 1;
            free(p);
        }
    }
    void *g = __libc_memalign(1 << 16, hide(100));
    CHECK(g != NULL && (uintptr_t)g % (1 << 16) == 0 && ferroc_usable(g) >= 100);
    free(g);
    /* memalign rounds an alignment that is not a power of two up, as glibc does. */
    void *m = memalign(24, hide(10));
    CHECK(m != NULL && (uintptr_t)m % 32 == 0);
    free(m);
    /* aligned_alloc wants a power of two. */
    errno = 0;
    CHECK(aligned_alloc(24, hide(48)) == NULL && errno == EINVAL);
    /* Many aligned blocks alive at once do not overlap. */
    enum { N = 512 };
    static char *blocks[N];
    for (int i = 0; i < N; i++) {
        size_t a = (size_t)1 << (i % 13);
        blocks[i] = (char *)aligned_alloc(a, hide(a));
        CHECK(blocks[i] && (uintptr_t)blocks[i] % a == 0);
        memset(blocks[i], i & 0xff, a);
    }
    for (int i = 0; i < N; i++) {
        CHECK(all_bytes(blocks[i], (size_t)1 << (i % 13), (unsigned char)(i & 0xff)));
        free(blocks[i]);
    }
}

static void check_valloc_pvalloc(void) {
    size_t page = page_size();
    size_t sizes[] = {0, 1, 100, page - 1, page, page + 1, 3 * page + 5, 100 * page};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        size_t n = sizes[i];
        char *v = (char *)valloc(hide(n));
        CHECK(v != NULL && (uintptr_t)v % page == 0 && malloc_usable_size(v) >= n);
        memset(v, 1, n);
        free(v);
        char *pv = (char *)pvalloc(hide(n));
        size_t rounded = n == 0 ? page : (n + page - 1) / page * page;
        CHECK(pv != NULL && (uintptr_t)pv % page == 0);
        CHECK(malloc_usable_size(pv) >= rounded);
        memset(pv, 1, rounded); /* the whole rounded size is the caller's */
        free(pv);
    }
    void *g = __libc_valloc(hide(10));
    CHECK(g != NULL && (uintptr_t)g % page == 0 && ferroc_usable(g) >= 10);
    free(g);
    g = __libc_pvalloc(hide(page + 1));
    CHECK(g != NULL && (uintptr_t)g % page == 0 && ferroc_usable(g) >= 2 * page);
    free(g);
}

static void check_usable_size(void) {
    enum { LIVE = 64 };
    unsigned char *live[LIVE] = {0};
    size_t live_size[LIVE] = {0};
    unsigned k = 0;
    size_t n = 0;
    for (;;) {
        if (n <= 4200)
            n += 1;
        else if (n <= 70000)
            n += 61;
        else if (n < ((size_t)64 << 20))
            n = n * 2 - 1;
        else
            break;
        unsigned slot = k++ % LIVE;
        if (live[slot]) {
            CHECK(all_bytes(live[slot], live_size[slot], (unsigned char)slot));
            free(live[slot]);
        }
        unsigned char *p = (unsigned char *)malloc(hide(n));
        size_t u = malloc_usable_size(p);
        CHECK(p != NULL && u >= n);
        memset(p, (unsigned char)slot, u);
        live[slot] = p;
        live_size[slot] = u;
    }
    for (unsigned slot = 0; slot < LIVE; slot++) {
        if (!live[slot]) continue;
        CHECK(all_bytes(live[slot], live_size[slot], (unsigned char)slot));
        free(live[slot]);
    }
    /* Aligned blocks too: the whole usable size from the returned pointer is the caller's. */
    for (size_t a = 16; a <= ((size_t)1 << 20); a *= 4) {
        for (size_t m = 1; m < 300000; m = m * 5 + 3) {
            enum { K = 8 };
            unsigned char *p[K];
            size_t u[K];
            for (int i = 0; i < K; i++) {
                p[i] = (unsigned char *)aligned_alloc(a, hide(m));
                CHECK(p[i] != NULL && (uintptr_t)p[i] % a == 0);
                u[i] = malloc_usable_size(p[i]);
                CHECK(u[i] >= m);
                memset(p[i], i + 1, u[i]);
            }
            for (int i = 0; i < K; i++) {
                CHECK(all_bytes(p[i], u[i], (unsigned char)(i + 1)));
                free(p[i]);
            }
        }
    }
}

static void check_trim(void) {
    enum { N = 64 * 1024 };
    static void *blocks[N];
    size_t base = rss_bytes();
    for (int i = 0; i < N; i++) {
        blocks[i] = malloc(hide(1024));
        CHECK(blocks[i] != NULL);
        memset(blocks[i], 7, 1024);
    }
    size_t full = rss_bytes();
    CHECK(full >= base + (48 << 20));
    for (int i = 0; i < N; i++) free(blocks[i]);
    CHECK(malloc_trim(0) == 1);
    /* Nothing is left to give back (nothing allocated in between). */
    CHECK(malloc_trim(0) == 0);
    size_t trimmed = rss_bytes();
    CHECK(trimmed + (48 << 20) <= full);
    /* A huge block alone. */
    char *h = (char *)malloc(hide(32 << 20));
    memset(h, 1, 32 << 20);
    free(h);
    malloc_trim(0);
    CHECK(rss_bytes() < full);
    printf("rss: %zu KiB -> %zu KiB -> %zu KiB\n", base >> 10, full >> 10, trimmed >> 10);
}

static void check_foreign(void) {
    /* Blocks of glibc's own malloc (looked up in libc itself), an mmap'd page, a static and
     * a stack buffer: free ignores them, malloc_usable_size says 0, realloc fails with
     * ENOMEM, and none of them is written to. */
    void *libc = dlopen("libc.so.6", RTLD_NOW | RTLD_NOLOAD);
    CHECK(libc != NULL);
    void *(*glibc_malloc)(size_t) = (void *(*)(size_t))dlsym(libc, "malloc");
    void (*glibc_free)(void *) = (void (*)(void *))dlsym(libc, "free");
    CHECK(glibc_malloc && glibc_free && (void *)glibc_malloc != (void *)malloc);
    size_t page = page_size();
    static char stat_buf[256];
    char stack_buf[256];
    char *foreign[6];
    size_t sizes[6] = {64, 4096, 2 << 20, 256, 256, 0};
    foreign[0] = (char *)glibc_malloc(64);
    foreign[1] = (char *)glibc_malloc(4096);
    foreign[2] = (char *)glibc_malloc(2 << 20); /* mmap'd by glibc */
    foreign[3] = stat_buf;
    foreign[4] = stack_buf;
    foreign[5] = (char *)mmap(NULL, 4 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    sizes[5] = 4 * page;
    CHECK(foreign[5] != MAP_FAILED);
    for (int i = 0; i < 6; i++) {
        CHECK(foreign[i] != NULL);
        memset(foreign[i], 0x77, sizes[i]);
    }
    for (int round = 0; round < 3; round++) {
        for (int i = 0; i < 6; i++) {
            CHECK(malloc_usable_size(foreign[i]) == 0);
            errno = SENTINEL;
            free(foreign[i]);
            free(foreign[i] + 16);
            CHECK(errno == SENTINEL);
            errno = 0;
            CHECK(realloc(foreign[i], 100) == NULL && errno == ENOMEM);
            CHECK(all_bytes(foreign[i], sizes[i], 0x77));
        }
        /* Ferroc's state is intact: blocks are distinct and keep their contents. */
        enum { N = 4000 };
        static unsigned char *ours[N];
        for (int i = 0; i < N; i++) {
            size_t n = 16 + (size_t)(i * 37 % 3000);
            ours[i] = (unsigned char *)malloc(hide(n));
            CHECK(ours[i] != NULL);
            memset(ours[i], i & 0xff, n);
        }
        for (int i = 0; i < N; i++) {
            size_t n = 16 + (size_t)(i * 37 % 3000);
            CHECK(all_bytes(ours[i], n, (unsigned char)(i & 0xff)));
            free(ours[i]);
        }
    }
    glibc_free(foreign[0]);
    glibc_free(foreign[1]);
    glibc_free(foreign[2]);
    munmap(foreign[5], 4 * page);
}

static void check_glibc_names(void) {
    void *m = __libc_malloc(hide(100));
    CHECK(m != NULL && ferroc_usable(m) >= 100);
    m = __libc_realloc(m, hide(100000));
    CHECK(m != NULL && ferroc_usable(m) >= 100000);
    __libc_free(m);
    void *p = NULL;
    CHECK(__posix_memalign(&p, 128, hide(10)) == 0 && (uintptr_t)p % 128 == 0 && ferroc_usable(p) >= 10);
    free(p);
    void (*free_aligned_sized)(void *, size_t, size_t) =
        (void (*)(void *, size_t, size_t))dlsym(RTLD_DEFAULT, "free_aligned_sized");
    CHECK(free_aligned_sized != NULL);
    void *a = aligned_alloc(256, hide(512));
    CHECK(ferroc_usable(a) >= 512);
    free_aligned_sized(a, 256, 512);
}

struct check {
    const char *name;
    void (*run)(void);
};

static const struct check CHECKS[] = {
    {"malloc0", check_malloc0},
    {"free_null", check_free_null},
    {"usable_null", check_usable_null},
    {"enomem", check_enomem},
    {"free_keeps_errno", check_free_keeps_errno},
    {"calloc_zero", check_calloc_zero},
    {"realloc", check_realloc},
    {"posix_memalign", check_posix_memalign},
    {"aligned", check_aligned},
    {"valloc_pvalloc", check_valloc_pvalloc},
    {"usable_size", check_usable_size},
    {"trim", check_trim},
    {"foreign", check_foreign},
    {"glibc_names", check_glibc_names},
};

int main(int argc, char **argv) {
    CHECK(argc == 2);
    CHECK(malloc_is_ferroc());
    for (size_t i = 0; i < sizeof CHECKS / sizeof CHECKS[0]; i++) {
        if (strcmp(argv[1], CHECKS[i].name) == 0) {
            CHECKS[i].run();
            printf("%s ok\n", argv[1]);
            return 0;
        }
    }
    fprintf(stderr, "unknown check %s\n", argv[1]);
    return 2;
}
