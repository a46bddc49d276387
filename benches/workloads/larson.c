/* larson: a server simulation (after Larson and Krishnan). Each of <threads> threads owns a
 * region of <slots> blocks of 16-1024 bytes and, in each of <rounds> rounds, replaces
 * <ops> random blocks of its region. Between rounds the regions move on to the next thread, so
 * most blocks are freed by a thread other than the one that allocated them.
 * Usage: larson <threads> <slots> <rounds> <ops> */
#include "common.h"

static long threads, nslots, rounds, ops;
static block_t **regions;
static pthread_barrier_t barrier;

static void *worker(void *arg) {
    long t = (long)(intptr_t)arg;
    uint64_t sum = 0;
    for (long round = 0; round < rounds; round++) {
        long region = (t + round) % threads;
        block_t *slots = regions[region];
        rng_t r = rng_seed((uint64_t)region + 1, (uint64_t)round);
        for (long k = 0; k < ops; k++)
            sum += replace_small(slots, (size_t)nslots, &r);
        pthread_barrier_wait(&barrier);
    }
    return (void *)(uintptr_t)sum;
}

int main(int argc, char **argv) {
    threads = arg_long(argc, argv, 1, 2);
    nslots = arg_long(argc, argv, 2, 10000);
    rounds = arg_long(argc, argv, 3, 100);
    ops = arg_long(argc, argv, 4, 100000);
    regions = xmalloc((size_t)threads * sizeof *regions);
    for (long t = 0; t < threads; t++) {
        rng_t r = rng_seed(1000 + (uint64_t)t, 0);
        regions[t] = xmalloc((size_t)nslots * sizeof(block_t));
        fill_small(regions[t], (size_t)nslots, &r);
    }
    pthread_barrier_init(&barrier, NULL, (unsigned)threads);
    pthread_t *ids = xmalloc((size_t)threads * sizeof *ids);
    for (long t = 0; t < threads; t++)
        spawn(&ids[t], worker, (void *)(intptr_t)t);
    uint64_t sum = 0;
    for (long t = 0; t < threads; t++) {
        void *ret;
        pthread_join(ids[t], &ret);
        sum += (uint64_t)(uintptr_t)ret;
    }
    for (long t = 0; t < threads; t++) {
        for (long i = 0; i < nslots; i++) {
            sum += check_block(regions[t][i].p, regions[t][i].n);
            free(regions[t][i].p);
        }
        free(regions[t]);
    }
    free(regions);
    free(ids);
    pthread_barrier_destroy(&barrier);
    print_checksum(sum);
    return 0;
}
