/* mstress: thread churn (after mimalloc's mstress). In each of <rounds> rounds, <threads> new
 * threads are started; each works on one region of <slots> blocks, left there by threads of
 * earlier rounds that have since exited: it does <ops> operations, each freeing a random block
 * and (7 times in 8) allocating a new one of 16-1024 bytes (1 in 100: up to 64 KiB), then exits
 * with its blocks still live. The regions move on to another thread each round.
 * Usage: mstress <threads> <slots> <rounds> <ops> */
#include "common.h"

static long threads, nslots, rounds, ops;
static block_t **regions;

typedef struct {
    long region, round;
    uint64_t sum;
} job_t;

static void *worker(void *arg) {
    job_t *job = arg;
    block_t *slots = regions[job->region];
    rng_t r = rng_seed(50 + (uint64_t)job->region, (uint64_t)job->round);
    uint64_t sum = 0;
    for (long k = 0; k < ops; k++) {
        block_t *s = &slots[rng_below(&r, (uint64_t)nslots)];
        if (s->p != NULL) {
            sum += check_block(s->p, s->n);
            free(s->p);
            s->p = NULL;
        }
        if (rng_below(&r, 8) != 0) {
            s->n = rng_below(&r, 100) == 0 ? 1024 + rng_below(&r, 63 * 1024) : small_size(&r, 16);
            s->p = xmalloc(s->n);
            tag_block(s->p, s->n, rng_next(&r));
        }
    }
    job->sum = sum;
    return NULL;
}

int main(int argc, char **argv) {
    threads = arg_long(argc, argv, 1, 2);
    nslots = arg_long(argc, argv, 2, 20000);
    rounds = arg_long(argc, argv, 3, 100);
    ops = arg_long(argc, argv, 4, 20000);
    regions = xmalloc((size_t)threads * sizeof *regions);
    for (long t = 0; t < threads; t++) {
        regions[t] = xmalloc((size_t)nslots * sizeof(block_t));
        memset(regions[t], 0, (size_t)nslots * sizeof(block_t));
    }
    pthread_t *ids = xmalloc((size_t)threads * sizeof *ids);
    job_t *jobs = xmalloc((size_t)threads * sizeof *jobs);
    uint64_t sum = 0;
    for (long round = 0; round < rounds; round++) {
        for (long t = 0; t < threads; t++) {
            jobs[t].region = (t + round) % threads;
            jobs[t].round = round;
            spawn(&ids[t], worker, &jobs[t]);
        }
        for (long t = 0; t < threads; t++) {
            pthread_join(ids[t], NULL);
            sum += jobs[t].sum;
        }
    }
    for (long t = 0; t < threads; t++) {
        for (long i = 0; i < nslots; i++) {
            if (regions[t][i].p != NULL) {
                sum += check_block(regions[t][i].p, regions[t][i].n);
                free(regions[t][i].p);
            }
        }
        free(regions[t]);
    }
    free(regions);
    free(ids);
    free(jobs);
    print_checksum(sum);
    return 0;
}
