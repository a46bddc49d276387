/* xmalloc: producers and consumers (after xmalloc-test). <threads> producers each allocate
 * <blocks> blocks of 16-1024 bytes in batches of 256 and hand the batches to their consumer
 * thread, which checks and frees them: every block is freed by a thread that never allocates
 * blocks of that kind. At most 64 batches per pair are in flight.
 * Usage: xmalloc <threads> <blocks> */
#include "common.h"

#define BATCH 256
#define QUEUE 64

typedef struct {
    void *p[BATCH];
    size_t n[BATCH];
    int count;
} batch_t;

typedef struct {
    pthread_mutex_t lock;
    pthread_cond_t changed;
    batch_t *ring[QUEUE];
    unsigned head, tail; /* tail - head batches are queued */
    int done;
    long index;
    long blocks;
    uint64_t sum;
} pair_t;

static void *producer(void *arg) {
    pair_t *q = arg;
    rng_t r = rng_seed(7 + (uint64_t)q->index, (uint64_t)q->blocks);
    long left = q->blocks;
    while (left > 0) {
        batch_t *b = xmalloc(sizeof *b);
        b->count = left < BATCH ? (int)left : BATCH;
        for (int i = 0; i < b->count; i++) {
            b->n[i] = small_size(&r, 16);
            b->p[i] = xmalloc(b->n[i]);
            tag_block(b->p[i], b->n[i], rng_next(&r));
        }
        left -= b->count;
        pthread_mutex_lock(&q->lock);
        while (q->tail - q->head == QUEUE)
            pthread_cond_wait(&q->changed, &q->lock);
        q->ring[q->tail++ % QUEUE] = b;
        pthread_cond_signal(&q->changed);
        pthread_mutex_unlock(&q->lock);
    }
    pthread_mutex_lock(&q->lock);
    q->done = 1;
    pthread_cond_signal(&q->changed);
    pthread_mutex_unlock(&q->lock);
    return NULL;
}

static void *consumer(void *arg) {
    pair_t *q = arg;
    uint64_t sum = 0;
    for (;;) {
        pthread_mutex_lock(&q->lock);
        while (q->tail == q->head && !q->done)
            pthread_cond_wait(&q->changed, &q->lock);
        if (q->tail == q->head) {
            pthread_mutex_unlock(&q->lock);
            break;
        }
        batch_t *b = q->ring[q->head++ % QUEUE];
        pthread_cond_signal(&q->changed);
        pthread_mutex_unlock(&q->lock);
        for (int i = 0; i < b->count; i++) {
            sum += check_block(b->p[i], b->n[i]);
            free(b->p[i]);
        }
        free(b);
    }
    q->sum = sum;
    return NULL;
}

int main(int argc, char **argv) {
    long threads = arg_long(argc, argv, 1, 2);
    long blocks = arg_long(argc, argv, 2, 10000000);
    pair_t *pairs = xmalloc((size_t)threads * sizeof *pairs);
    pthread_t *ids = xmalloc(2 * (size_t)threads * sizeof *ids);
    for (long t = 0; t < threads; t++) {
        pair_t *q = &pairs[t];
        memset(q, 0, sizeof *q);
        pthread_mutex_init(&q->lock, NULL);
        pthread_cond_init(&q->changed, NULL);
        q->index = t;
        q->blocks = blocks;
        spawn(&ids[2 * t], producer, q);
        spawn(&ids[2 * t + 1], consumer, q);
    }
    uint64_t sum = 0;
    for (long t = 0; t < threads; t++) {
        pthread_join(ids[2 * t], NULL);
        pthread_join(ids[2 * t + 1], NULL);
        sum += pairs[t].sum;
        pthread_mutex_destroy(&pairs[t].lock);
        pthread_cond_destroy(&pairs[t].changed);
    }
    free(pairs);
    free(ids);
    print_checksum(sum);
    return 0;
}
