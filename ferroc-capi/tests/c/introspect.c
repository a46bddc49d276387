/* fe_heap_visit_blocks, fe_heap_contains and fe_is_ferroc_pointer on blocks from malloc
 * (Ferroc's, preloaded or linked): the visited set holds exactly the live blocks of this
 * thread (ours among whatever the C library allocated), with their usable sizes; freed,
 * huge, other threads' and foreign pointers are told apart. Prints "introspect ok". */
#include <pthread.h>
#include <stdbool.h>
#include <sys/mman.h>

#include "check.h"

typedef bool (*visitor_fn)(void *block, size_t size, void *arg);

#ifdef FERROC_LINKED
static bool visit(visitor_fn f, void *arg) { return fe_heap_visit_blocks(f, arg); }
static bool contains(const void *p) { return fe_heap_contains(p); }
static bool is_ferroc(const void *p) { return fe_is_ferroc_pointer(p); }
#else
static void *lookup(const char *name) {
    void *f = dlsym(RTLD_DEFAULT, name);
    if (!f) {
        fprintf(stderr, "%s not found: Ferroc is not loaded\n", name);
        exit(1);
    }
    return f;
}
static bool visit(visitor_fn f, void *arg) {
    bool (*fn)(visitor_fn, void *) = (bool (*)(visitor_fn, void *))lookup("fe_heap_visit_blocks");
    return fn(f, arg);
}
static bool contains(const void *p) {
    bool (*fn)(const void *) = (bool (*)(const void *))lookup("fe_heap_contains");
    return fn(p);
}
static bool is_ferroc(const void *p) {
    bool (*fn)(const void *) = (bool (*)(const void *))lookup("fe_is_ferroc_pointer");
    return fn(p);
}
#endif

enum { N = 600, MAX_SEEN = 1 << 16 };

/* What the visitor saw, in static storage: the visitor must not need the heap it walks. */
static struct {
    void *block[MAX_SEEN];
    size_t size[MAX_SEEN];
    size_t n;
    size_t stop_after; /* 0: never stop */
} seen;

static bool record(void *block, size_t size, void *arg) {
    CHECK(arg == &seen);
    CHECK(seen.n < MAX_SEEN);
    if (seen.n > 0) CHECK(block > seen.block[seen.n - 1]); /* address order, none twice */
    seen.block[seen.n] = block;
    seen.size[seen.n] = size;
    seen.n++;
    return seen.stop_after == 0 || seen.n < seen.stop_after;
}

/* The visited size of `p`, or 0 if it was not visited (binary search: address order). */
static size_t visited_size(const void *p) {
    size_t lo = 0, hi = seen.n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if ((const char *)seen.block[mid] < (const char *)p) lo = mid + 1;
        else hi = mid;
    }
    return lo < seen.n && seen.block[lo] == p ? seen.size[lo] : 0;
}

static void walk(void) {
    seen.n = 0;
    seen.stop_after = 0;
    CHECK(visit(record, &seen));
}

static void *blocks[N];
static size_t sizes[N];
static const size_t HUGE = 8u << 20;

static void *theirs_thread(void *arg) {
    void **out = (void **)arg;
    *out = malloc(hide(72));
    CHECK(*out != NULL && contains(*out));
    return NULL;
}

/* Frees every visited block that is one of ours (blocks[]), during the walk. */
static size_t freed_in_walk;
static bool free_ours(void *block, size_t size, void *arg) {
    (void)size;
    (void)arg;
    for (int i = 0; i < N; i++) {
        if (blocks[i] == block) {
            free(block);
            blocks[i] = NULL;
            freed_in_walk++;
        }
    }
    return true;
}

int main(void) {
    static const size_t kinds[] = {1, 8, 24, 100, 1000, 4000, 20000, 100000, 500000};
    uint64_t rng = 42;
    for (int i = 0; i < N; i++) {
        sizes[i] = kinds[rng_next(&rng) % (sizeof kinds / sizeof kinds[0])];
        blocks[i] = malloc(hide(sizes[i]));
        CHECK(blocks[i] != NULL);
        memset(blocks[i], 0x5a, sizes[i]);
    }
    void *huge = malloc(hide(HUGE));
    CHECK(huge != NULL);

    /* Every live block of ours is visited once, with its usable size. */
    walk();
    for (int i = 0; i < N; i++) {
        CHECK(visited_size(blocks[i]) == ferroc_usable(blocks[i]));
        CHECK(contains(blocks[i]));
        CHECK(contains((char *)blocks[i] + sizes[i] - 1));
        CHECK(is_ferroc(blocks[i]));
    }
    CHECK(visited_size(huge) == 0 && !contains(huge));
    CHECK(is_ferroc(huge) && is_ferroc((char *)huge + HUGE - 1));

    /* Free every other block: those are no longer visited nor contained, and still Ferroc's
     * memory. No allocation between the frees and the checks. */
    for (int i = 0; i < N; i += 2) free(blocks[i]);
    walk();
    for (int i = 0; i < N; i++) {
        if (i % 2 == 0) {
            CHECK(visited_size(blocks[i]) == 0);
            CHECK(!contains(blocks[i]));
            CHECK(is_ferroc(blocks[i]));
            blocks[i] = NULL;
        } else {
            CHECK(visited_size(blocks[i]) == ferroc_usable(blocks[i]));
        }
    }

    /* An early stop. */
    seen.n = 0;
    seen.stop_after = 3;
    CHECK(!visit(record, &seen));
    CHECK(seen.n == 3);
    CHECK(visit(NULL, NULL));

    /* Another thread's block is not in this thread's heap, and neither are foreign
     * pointers. */
    void *theirs = NULL;
    pthread_t t;
    CHECK(pthread_create(&t, NULL, theirs_thread, &theirs) == 0);
    CHECK(pthread_join(t, NULL) == 0);
    CHECK(theirs != NULL && !contains(theirs) && is_ferroc(theirs));
    free(theirs);
    int local = 1;
    static int global = 2;
    void *mapped = mmap(NULL, 1 << 16, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CHECK(mapped != MAP_FAILED);
    const void *foreign[] = {&local, &global, mapped, NULL, (void *)(uintptr_t)-1, (void *)main};
    for (size_t i = 0; i < sizeof foreign / sizeof foreign[0]; i++) {
        CHECK(!contains(foreign[i]));
        CHECK(!is_ferroc(foreign[i]));
    }
    munmap(mapped, 1 << 16);

    /* A visitor that frees: every remaining block of ours is reached and freed once. */
    freed_in_walk = 0;
    CHECK(visit(free_ours, NULL));
    CHECK(freed_in_walk == N / 2);
    for (int i = 0; i < N; i++) CHECK(blocks[i] == NULL);
    free(huge);

    say("introspect ok\n");
    return 0;
}
