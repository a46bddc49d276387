/* cache-scratch and cache-thrash: false sharing (after Hoard's benchmarks). Each of <threads>
 * threads does <iterations> times: allocate an 8-byte block, write each of its bytes
 * <repetitions> times, free it. If the allocator gives blocks of one cache line to different
 * threads, their writes fight over that line.
 * - thrash: the threads start with nothing (active false sharing: does the allocator hand out
 *   neighbouring blocks to different threads?).
 * - scratch: the main thread first allocates one block per thread, side by side, and each
 *   thread starts by freeing its block (passive false sharing: does a freed block go to the
 *   freeing thread's next allocation?).
 * Usage: cache <threads> <scratch|thrash> <iterations> <repetitions> */
#include "common.h"

#define OBJECT 8

static long iterations, repetitions;

typedef struct {
    char *handed; /* scratch: the block to free first */
    long index;
    uint64_t sum;
} job_t;

static void *worker(void *arg) {
    job_t *job = arg;
    if (job->handed != NULL) {
        for (int k = 0; k < OBJECT; k++)
            if (job->handed[k] != (char)(job->index + k))
                die("a handed block changed");
        free(job->handed);
    }
    uint64_t sum = 0;
    for (long i = 0; i < iterations; i++) {
        volatile char *p = xmalloc(OBJECT);
        for (int k = 0; k < OBJECT; k++)
            p[k] = (char)(i + k);
        for (long j = 0; j < repetitions; j++)
            for (int k = 0; k < OBJECT; k++)
                p[k] = (char)(p[k] + 1);
        for (int k = 0; k < OBJECT; k++)
            sum += (unsigned char)p[k];
        free((void *)p);
    }
    job->sum = sum;
    return NULL;
}

int main(int argc, char **argv) {
    long threads = arg_long(argc, argv, 1, 2);
    if (argc < 3 || (strcmp(argv[2], "scratch") != 0 && strcmp(argv[2], "thrash") != 0)) {
        fprintf(stderr, "usage: cache <threads> <scratch|thrash> <iterations> <repetitions>\n");
        return 2;
    }
    int scratch = strcmp(argv[2], "scratch") == 0;
    iterations = arg_long(argc, argv, 3, 1000);
    repetitions = arg_long(argc, argv, 4, 100000);
    job_t *jobs = xmalloc((size_t)threads * sizeof *jobs);
    pthread_t *ids = xmalloc((size_t)threads * sizeof *ids);
    for (long t = 0; t < threads; t++) {
        jobs[t].index = t;
        jobs[t].handed = NULL;
        if (scratch) {
            jobs[t].handed = xmalloc(OBJECT);
            for (int k = 0; k < OBJECT; k++)
                jobs[t].handed[k] = (char)(t + k);
        }
    }
    for (long t = 0; t < threads; t++)
        spawn(&ids[t], worker, &jobs[t]);
    uint64_t sum = 0;
    for (long t = 0; t < threads; t++) {
        pthread_join(ids[t], NULL);
        sum += jobs[t].sum;
    }
    free(jobs);
    free(ids);
    print_checksum(sum);
    return 0;
}
