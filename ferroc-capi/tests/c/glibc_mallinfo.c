/* mallinfo2 and mallinfo under LD_PRELOAD=libferroc.so: glibc's declarations, Ferroc's
 * answers. The figures move with allocations and frees, uordblks covers what is live, the
 * peak (usmblks) never falls below it, huge blocks show in hblks/hblkhd, and mallinfo's int
 * fields saturate. Prints "mallinfo ok". */
#include <limits.h>
#include <malloc.h>

#include "check.h"

enum { SMALL = 100000, SMALL_SIZE = 256, HUGE = 3, HUGE_SIZE = 8 << 20 };

static void show(const char *when, struct mallinfo2 m) {
    printf("%-12s arena %zu ordblks %zu hblks %zu hblkhd %zu usmblks %zu uordblks %zu "
           "fordblks %zu keepcost %zu\n",
           when, m.arena, m.ordblks, m.hblks, m.hblkhd, m.usmblks, m.uordblks, m.fordblks,
           m.keepcost);
}

/* What holds for every snapshot. */
static void consistent(struct mallinfo2 m) {
    CHECK(m.usmblks >= m.uordblks);
    CHECK(m.smblks == 0 && m.fsmblks == 0);
    /* Live blocks lie in committed memory. */
    CHECK(m.arena + m.hblkhd >= m.uordblks);
    CHECK(m.arena + m.hblkhd == m.uordblks + m.fordblks);
}

static void *small[SMALL];

int main(void) {
    struct mallinfo2 m0 = mallinfo2();
    show("start", m0);
    consistent(m0);

    for (int i = 0; i < SMALL; i++) {
        small[i] = malloc(hide(SMALL_SIZE));
        CHECK(small[i] != NULL);
        memset(small[i], 1, SMALL_SIZE);
    }
    struct mallinfo2 m1 = mallinfo2();
    show("small", m1);
    consistent(m1);
    CHECK(m1.uordblks >= (size_t)SMALL * SMALL_SIZE);
    CHECK(m1.uordblks >= m0.uordblks + (size_t)SMALL * SMALL_SIZE / 2);
    CHECK(m1.arena > m0.arena);

    void *huge[HUGE];
    for (int i = 0; i < HUGE; i++) {
        huge[i] = malloc(hide(HUGE_SIZE));
        CHECK(huge[i] != NULL);
        memset(huge[i], 2, 4096);
    }
    struct mallinfo2 m2 = mallinfo2();
    show("huge", m2);
    consistent(m2);
    CHECK(m2.hblks >= m1.hblks + HUGE);
    CHECK(m2.hblkhd >= m1.hblkhd + (size_t)HUGE * HUGE_SIZE);
    CHECK(m2.uordblks >= m1.uordblks + (size_t)HUGE * HUGE_SIZE);
    CHECK(m2.usmblks >= m2.uordblks);

    for (int i = 0; i < HUGE; i++) free(huge[i]);
    struct mallinfo2 m3 = mallinfo2();
    show("huge freed", m3);
    consistent(m3);
    CHECK(m3.hblks == m1.hblks && m3.hblkhd == m1.hblkhd);
    CHECK(m3.uordblks <= m2.uordblks - (size_t)HUGE * HUGE_SIZE);
    /* The peak remembers the huge blocks. */
    CHECK(m3.usmblks >= m1.uordblks + (size_t)HUGE * HUGE_SIZE);

    for (int i = 0; i < SMALL; i++) free(small[i]);
    malloc_trim(0);
    struct mallinfo2 m4 = mallinfo2();
    show("small freed", m4);
    consistent(m4);
    CHECK(m4.uordblks + (size_t)SMALL * SMALL_SIZE / 2 <= m1.uordblks);
    CHECK(m4.usmblks >= m2.uordblks);

    /* mallinfo: the same figures in ints, saturating. A 3 GiB block (untouched) puts hblkhd
     * past INT_MAX. */
    struct mallinfo small_info = mallinfo();
    CHECK(small_info.hblks == (int)m4.hblks);
    CHECK(small_info.smblks == 0);
    size_t big_size = (size_t)3 << 30;
    void *big = malloc(hide(big_size));
    CHECK(big != NULL);
    struct mallinfo2 m5 = mallinfo2();
    struct mallinfo m = mallinfo();
    show("3 GiB", m5);
    CHECK(m5.hblkhd >= big_size && m5.hblkhd > (size_t)INT_MAX);
    CHECK(m.hblkhd == INT_MAX);
    CHECK(m.uordblks == INT_MAX && m5.uordblks > (size_t)INT_MAX);
    CHECK(m.usmblks == INT_MAX);
    CHECK(m.hblks == (int)m5.hblks);
    free(big);
    struct mallinfo after = mallinfo();
    CHECK(after.hblkhd < INT_MAX);
    printf("mallinfo ok\n");
    return 0;
}
