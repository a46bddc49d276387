/* huge: big blocks, in one thread. 4 slots each hold a block of 1-64 MiB; <ops> times a random
 * slot's block is checked and freed and a new one of a random size is allocated and written:
 * one word in every page, as a program filling a large buffer would touch each page.
 * Usage: huge <threads (unused)> <ops> */
#include "common.h"

#define SLOTS 4
#define MIB ((size_t)1 << 20)

typedef struct {
    uint64_t *p;
    size_t words;
    uint64_t seed;
} slot_t;

static size_t page_words;

static void fill(slot_t *s) {
    for (size_t i = 0; i < s->words; i += page_words)
        s->p[i] = s->seed + i;
    s->p[s->words - 1] = s->seed;
}

static uint64_t check_and_free(slot_t *s) {
    uint64_t sum = 0;
    for (size_t i = 0; i < s->words; i += page_words * 7) {
        if (s->p[i] != s->seed + i)
            die("a huge block's contents changed");
        sum += s->p[i];
    }
    if (s->p[s->words - 1] != s->seed)
        die("a huge block's last word changed");
    free(s->p);
    return sum + s->words;
}

int main(int argc, char **argv) {
    long ops = arg_long(argc, argv, 2, 1000);
    page_words = (size_t)sysconf(_SC_PAGESIZE) / sizeof(uint64_t);
    rng_t r = rng_seed(11, (uint64_t)ops);
    slot_t slots[SLOTS] = {{0}};
    uint64_t sum = 0;
    for (long k = 0; k < ops; k++) {
        slot_t *s = &slots[rng_below(&r, SLOTS)];
        if (s->p != NULL)
            sum += check_and_free(s);
        size_t bytes = MIB + rng_below(&r, 63 * MIB);
        s->words = bytes / sizeof(uint64_t);
        s->p = xmalloc(s->words * sizeof(uint64_t));
        s->seed = rng_next(&r);
        fill(s);
    }
    for (int i = 0; i < SLOTS; i++)
        if (slots[i].p != NULL)
            sum += check_and_free(&slots[i]);
    print_checksum(sum);
    return 0;
}
