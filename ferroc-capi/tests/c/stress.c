/* Stress: THREADS threads per round, re-created every round; every block carries a cookie
 * (its size and address, hashed, at both ends) checked before it is freed; blocks are handed
 * between threads through shared slots and freed by whoever takes them, and a share of each
 * round's blocks survives its threads and is freed in a later round.
 *
 * Usage: stress [threads] [rounds] [ops per thread]. */
#include <malloc.h>
#include <pthread.h>
#include <stdatomic.h>

#include "check.h"

enum { SLOTS = 4096, SURVIVORS = 8192 };

static _Atomic(unsigned char *) slots[SLOTS];
static _Atomic(unsigned char *) survivors[SURVIVORS];
static atomic_ulong freed_foreign;
static long ops;

struct header {
    uint64_t cookie;
    size_t size;
};

static uint64_t cookie_of(const void *p, size_t n) {
    uint64_t x = (uint64_t)(uintptr_t)p * 0x9E3779B97F4A7C15ULL ^ (uint64_t)n;
    return x ^ (x >> 29);
}

static size_t pick_size(uint64_t *rng) {
    uint64_t r = rng_next(rng);
    switch (r % 64) {
    case 0: return 64 * 1024 + (r >> 8) % (512 * 1024);
    case 1: return (2 << 20) + (r >> 8) % (2 << 20);
    case 2:
    case 3:
    case 4: return 4096 + (r >> 8) % 30000;
    default: return sizeof(struct header) + 8 + (r >> 8) % 1000;
    }
}

static unsigned char *make(size_t n) {
    unsigned char *p = malloc(n);
    CHECK(p != NULL);
    CHECK(malloc_usable_size(p) >= n);
    struct header h = {cookie_of(p, n), n};
    memcpy(p, &h, sizeof h);
    uint64_t tail = ~h.cookie;
    memcpy(p + n - sizeof tail, &tail, sizeof tail);
    return p;
}

static void check_and_free(unsigned char *p) {
    if (!p) return;
    struct header h;
    memcpy(&h, p, sizeof h);
    CHECK(h.size >= sizeof(struct header) + 8 && h.size < (8 << 20));
    CHECK(h.cookie == cookie_of(p, h.size));
    uint64_t tail;
    memcpy(&tail, p + h.size - sizeof tail, sizeof tail);
    CHECK(tail == ~h.cookie);
    memset(p, 0xdd, sizeof h); /* a double free would fail the cookie check */
    free(p);
}

static void *run(void *arg) {
    uint64_t rng = (uintptr_t)arg * 0x1000193 + 17;
    enum { LOCAL = 128 };
    unsigned char *local[LOCAL] = {0};
    for (long i = 0; i < ops; i++) {
        uint64_t r = rng_next(&rng);
        switch (r % 8) {
        case 0:
        case 1: { /* hand a block over: whatever was in the slot is freed here */
            unsigned char *old = atomic_exchange(&slots[(r >> 8) % SLOTS], make(pick_size(&rng)));
            if (old) atomic_fetch_add_explicit(&freed_foreign, 1, memory_order_relaxed);
            check_and_free(old);
            break;
        }
        case 2: /* leave a block for a later round's threads */
            check_and_free(atomic_exchange(&survivors[(r >> 8) % SURVIVORS], make(pick_size(&rng))));
            break;
        case 3: { /* realloc keeps the contents: the old header moves with the block */
            unsigned slot = (unsigned)((r >> 8) % LOCAL);
            unsigned char *p = local[slot];
            if (!p) break;
            struct header h;
            memcpy(&h, p, sizeof h);
            CHECK(h.cookie == cookie_of(p, h.size));
            size_t n = pick_size(&rng);
            unsigned char *q = realloc(p, n);
            CHECK(q != NULL && malloc_usable_size(q) >= n);
            CHECK(memcmp(q, &h, sizeof h) == 0);
            struct header nh = {cookie_of(q, n), n};
            memcpy(q, &nh, sizeof nh);
            uint64_t tail = ~nh.cookie;
            memcpy(q + n - sizeof tail, &tail, sizeof tail);
            local[slot] = q;
            break;
        }
        default: { /* local churn */
            unsigned slot = (unsigned)((r >> 8) % LOCAL);
            check_and_free(local[slot]);
            local[slot] = make(pick_size(&rng));
        }
        }
    }
    /* Half of the local blocks go to the survivors, the rest are freed. */
    for (unsigned s = 0; s < LOCAL; s++) {
        if (s % 2 == 0)
            check_and_free(atomic_exchange(&survivors[rng_next(&rng) % SURVIVORS], local[s]));
        else
            check_and_free(local[s]);
    }
    return NULL;
}

int main(int argc, char **argv) {
    int threads = argc > 1 ? atoi(argv[1]) : 16;
    int rounds = argc > 2 ? atoi(argv[2]) : 8;
    ops = argc > 3 ? atol(argv[3]) : 20000;
    CHECK(threads >= 1 && rounds >= 1 && ops >= 1);
    CHECK(malloc_is_ferroc());
    pthread_t *t = malloc(sizeof *t * (size_t)threads);
    CHECK(t != NULL);
    for (int round = 0; round < rounds; round++) {
        for (int i = 0; i < threads; i++)
            CHECK(pthread_create(&t[i], NULL, run, (void *)(uintptr_t)(round * threads + i + 1)) == 0);
        for (int i = 0; i < threads; i++) CHECK(pthread_join(t[i], NULL) == 0);
        /* Every survivor is still intact after its thread exited. */
        for (int s = 0; s < SURVIVORS; s++) {
            unsigned char *p = atomic_load(&survivors[s]);
            if (p) {
                struct header h;
                memcpy(&h, p, sizeof h);
                CHECK(h.cookie == cookie_of(p, h.size));
            }
        }
    }
    for (int s = 0; s < SLOTS; s++) check_and_free(atomic_exchange(&slots[s], NULL));
    for (int s = 0; s < SURVIVORS; s++) check_and_free(atomic_exchange(&survivors[s], NULL));
    free(t);
    printf("stress ok: %d threads x %d rounds x %ld ops, %lu blocks freed by another thread\n", threads, rounds,
           ops, (unsigned long)atomic_load(&freed_foreign));
    return 0;
}
