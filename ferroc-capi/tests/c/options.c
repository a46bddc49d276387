/* Ferroc's runtime options from C: fe_option_get/fe_option_set, mallopt, the invalid-free
 * policy and the purge delay. Linked with libferroc.so (FERROC_LINKED): malloc is Ferroc's.
 *
 * options get            prints "<id> <value>" for every option, after one allocation
 * options set            fe_option_set/get and mallopt at run time; prints "set ok"
 * options invalid-free   frees a pointer Ferroc never handed out; prints "survived"
 * options purge now|never|runtime
 *                        frees 64 MiB of huge blocks and checks the resident size: back at
 *                        once (now, runtime: set to 0 by fe_option_set) or kept (never)
 * options stats-at-exit  turns the statistics report on at run time and exits
 * options large-pages    keeps 64 MiB of small blocks live, every page written, and prints
 *                        "anon-huge <KiB>": the AnonHugePages of /proc/self/smaps_rollup
 */
#include <errno.h>
#include <malloc.h>
#include <time.h>

#include "check.h"

static void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static void get_all(void) {
    void *p = malloc(hide(32));
    CHECK(p != NULL && ferroc_usable(p) >= 32);
    free(p);
    for (int id = FE_OPTION_PURGE_DELAY; id <= FE_OPTION_INVALID_FREE; id++) {
        errno = 0;
        long v = fe_option_get((fe_option_t)id);
        CHECK(errno == 0);
        printf("%d %ld\n", id, v);
    }
    errno = 0;
    CHECK(fe_option_get((fe_option_t)7) == 0 && errno == EINVAL);
    errno = 0;
    CHECK(fe_option_get((fe_option_t)-1) == 0 && errno == EINVAL);
}

static void set_at_run_time(void) {
    void *p = malloc(hide(32));
    CHECK(p != NULL && ferroc_usable(p) >= 32);
    free(p);
    /* Run-time options take effect. */
    CHECK(fe_option_set(FE_OPTION_PURGE_DELAY, 0) == 0);
    CHECK(fe_option_get(FE_OPTION_PURGE_DELAY) == 0);
    CHECK(fe_option_set(FE_OPTION_PURGE_DELAY, -1) == 0);
    CHECK(fe_option_get(FE_OPTION_PURGE_DELAY) == -1);
    CHECK(fe_option_set(FE_OPTION_VERBOSE, 0) == 0);
    CHECK(fe_option_set(FE_OPTION_SHOW_STATS, 0) == 0);
    CHECK(fe_option_set(FE_OPTION_INVALID_FREE, FE_INVALID_FREE_WARN) == 0);
    CHECK(fe_option_get(FE_OPTION_INVALID_FREE) == FE_INVALID_FREE_WARN);
    CHECK(fe_option_set(FE_OPTION_INVALID_FREE, 3) == EINVAL);
    CHECK(fe_option_get(FE_OPTION_INVALID_FREE) == FE_INVALID_FREE_WARN);
    /* Start-up ones are refused after the start. */
    CHECK(fe_option_set(FE_OPTION_LARGE_PAGES, 1) == EBUSY);
    CHECK(fe_option_set(FE_OPTION_EAGER_COMMIT, 1) == EBUSY);
    CHECK(fe_option_set(FE_OPTION_RESERVE, 1 << 20) == EBUSY);
    CHECK(fe_option_get(FE_OPTION_LARGE_PAGES) == 0);
    CHECK(fe_option_get(FE_OPTION_EAGER_COMMIT) == 0);
    CHECK(fe_option_get(FE_OPTION_RESERVE) == 0);
    CHECK(fe_option_set((fe_option_t)99, 1) == EINVAL);

    /* mallopt (glibc's name, here Ferroc's) maps onto the options. */
    CHECK(mallopt(M_TRIM_THRESHOLD, 0) == 1);
    CHECK(fe_option_get(FE_OPTION_PURGE_DELAY) == 0);
    CHECK(mallopt(M_TRIM_THRESHOLD, -1) == 1);
    CHECK(fe_option_get(FE_OPTION_PURGE_DELAY) == -1);
    CHECK(mallopt(M_TRIM_THRESHOLD, 128 * 1024) == 1);
    CHECK(fe_option_get(FE_OPTION_PURGE_DELAY) == 10);
    CHECK(mallopt(M_CHECK_ACTION, 0) == 1);
    CHECK(fe_option_get(FE_OPTION_INVALID_FREE) == FE_INVALID_FREE_IGNORE);
    CHECK(mallopt(M_CHECK_ACTION, 1) == 1);
    CHECK(fe_option_get(FE_OPTION_INVALID_FREE) == FE_INVALID_FREE_WARN);
    CHECK(mallopt(M_CHECK_ACTION, 3) == 1);
    CHECK(fe_option_get(FE_OPTION_INVALID_FREE) == FE_INVALID_FREE_ABORT);
    /* Accepted and ignored. */
    CHECK(mallopt(M_MMAP_THRESHOLD, 1 << 20) == 1);
    CHECK(mallopt(M_ARENA_MAX, 2) == 1);
    CHECK(mallopt(M_ARENA_TEST, 2) == 1);
    CHECK(mallopt(M_TOP_PAD, 0) == 1);
    CHECK(mallopt(M_MMAP_MAX, 0) == 1);
    CHECK(mallopt(M_PERTURB, 0x55) == 1);
    CHECK(mallopt(M_MXFAST, 0) == 1);
    CHECK(mallopt(12345, 1) == 1);
    CHECK(fe_mallopt(M_TRIM_THRESHOLD, 0) == 1);
    CHECK(fe_option_get(FE_OPTION_PURGE_DELAY) == 0);
    CHECK(fe_option_get(FE_OPTION_INVALID_FREE) == FE_INVALID_FREE_ABORT);
    /* Still allocating and freeing. */
    for (int i = 0; i < 1000; i++) free(malloc(hide((size_t)i * 97)));
    printf("set ok\n");
}

static void invalid_free(void) {
    static char not_ours[64];
    void *p = malloc(hide(32));
    CHECK(p != NULL && ferroc_usable(p) >= 32);
    free(p);
    free(NULL); /* never the policy's business */
    say("before\n");
    errno = 12345;
    free(hide_ptr(not_ours + 16));
    CHECK(errno == 12345);
    say("survived\n");
}

enum { BLOCKS = 4, BLOCK = 16 << 20 };

static void purge(const char *mode) {
    if (strcmp(mode, "runtime") == 0) {
        free(malloc(hide(32)));
        CHECK(fe_option_set(FE_OPTION_PURGE_DELAY, 0) == 0);
    }
    void *blocks[BLOCKS];
    size_t base = rss_bytes();
    for (int i = 0; i < BLOCKS; i++) {
        blocks[i] = malloc(hide(BLOCK));
        CHECK(blocks[i] != NULL);
        memset(blocks[i], 0x5a, BLOCK);
    }
    size_t full = rss_bytes();
    CHECK(full >= base + (size_t)BLOCKS * BLOCK / 2);
    for (int i = 0; i < BLOCKS; i++) free(blocks[i]);
    size_t freed = rss_bytes();
    printf("rss: %zu KiB -> %zu KiB -> %zu KiB\n", base >> 10, full >> 10, freed >> 10);
    if (strcmp(mode, "never") == 0) {
        /* Kept resident, long after the delay would have passed. */
        sleep_ms(50);
        free(malloc(hide(BLOCK)));
        fe_collect(false);
        size_t later = rss_bytes();
        printf("later: %zu KiB\n", later >> 10);
        CHECK(later + BLOCK >= full);
        /* An explicit trim still gives it back. */
        fe_collect(true);
        CHECK(rss_bytes() + (size_t)BLOCKS * BLOCK / 2 <= full);
    } else {
        /* Back right after the frees. */
        CHECK(freed + (size_t)BLOCKS * BLOCK / 2 <= full);
    }
    printf("purge ok\n");
}

/* AnonHugePages of the whole process, in KiB (smaps_rollup), or -1 if it cannot be read. */
static long anon_huge_kib(void) {
    FILE *f = fopen("/proc/self/smaps_rollup", "r");
    if (f == NULL) return -1;
    char line[256];
    long kib = -1;
    while (fgets(line, sizeof line, f) != NULL) {
        if (sscanf(line, "AnonHugePages: %ld kB", &kib) == 1) break;
    }
    fclose(f);
    return kib;
}

/* 64 MiB of 4 KiB blocks (slabs out of the arenas), every page written, all live at once. */
static void large_pages(void) {
    enum { SIZE = 4096, COUNT = (64 << 20) / SIZE };
    static char *blocks[COUNT];
    for (int i = 0; i < COUNT; i++) {
        blocks[i] = malloc(hide(SIZE));
        CHECK(blocks[i] != NULL);
        memset(blocks[i], 1, SIZE);
    }
    printf("anon-huge %ld\n", anon_huge_kib());
    for (int i = 0; i < COUNT; i++) free(blocks[i]);
}

int main(int argc, char **argv) {
    CHECK(argc >= 2);
    const char *what = argv[1];
    if (strcmp(what, "get") == 0) {
        get_all();
    } else if (strcmp(what, "set") == 0) {
        set_at_run_time();
    } else if (strcmp(what, "invalid-free") == 0) {
        invalid_free();
    } else if (strcmp(what, "purge") == 0 && argc == 3) {
        purge(argv[2]);
    } else if (strcmp(what, "large-pages") == 0) {
        large_pages();
    } else if (strcmp(what, "stats-at-exit") == 0) {
        free(malloc(hide(100)));
        CHECK(fe_option_set(FE_OPTION_SHOW_STATS, 1) == 0);
        printf("stats ok\n");
    } else {
        fprintf(stderr, "unknown mode %s\n", what);
        return 2;
    }
    return 0;
}
