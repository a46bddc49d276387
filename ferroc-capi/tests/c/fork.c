/* fork() while 8 threads allocate and free: the child allocates and frees (in its main thread
 * and new threads), frees blocks the parent's threads made, and exits cleanly. */
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/wait.h>

#include "check.h"

enum { WORKERS = 8, SHARED = 256, FORKS = 12 };

static _Atomic(void *) shared[SHARED];
static atomic_int stop;

static size_t pick_size(uint64_t *rng) {
    uint64_t r = rng_next(rng);
    switch (r % 16) {
    case 0: return 100000 + r % 900000;
    case 1: return 1 << 20;
    default: return 8 + (r >> 8) % 2000;
    }
}

static void *worker(void *arg) {
    uint64_t rng = (uintptr_t)arg * 7919 + 1;
    void *ring[64] = {0};
    unsigned i = 0;
    while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
        unsigned slot = i++ % 64;
        free(ring[slot]);
        size_t n = pick_size(&rng);
        ring[slot] = malloc(n);
        CHECK(ring[slot] != NULL);
        memset(ring[slot], 0x42, n < 256 ? n : 256);
        /* Hand a block to whoever comes next (another worker, or a child). */
        void *mine = malloc(48);
        CHECK(mine != NULL);
        void *old = atomic_exchange(&shared[rng_next(&rng) % SHARED], mine);
        free(old);
    }
    for (unsigned s = 0; s < 64; s++) free(ring[s]);
    return NULL;
}

static void *child_thread(void *arg) {
    uint64_t rng = (uintptr_t)arg + 99;
    for (int i = 0; i < 2000; i++) {
        size_t n = pick_size(&rng);
        char *p = malloc(n);
        CHECK(p != NULL);
        p[0] = p[n - 1] = 1;
        free(p);
    }
    return NULL;
}

static int child(void) {
    alarm(20); /* a deadlock ends the child with SIGALRM */
    uint64_t rng = 12345;
    enum { KEEP = 1000 };
    static unsigned char *keep[KEEP];
    for (int round = 0; round < 4; round++) {
        for (int i = 0; i < KEEP; i++) {
            size_t n = pick_size(&rng) % 5000 + 1;
            keep[i] = malloc(n);
            CHECK(keep[i] != NULL);
            memset(keep[i], i & 0xff, n < 64 ? n : 64);
        }
        for (int i = 0; i < KEEP; i++) {
            CHECK(keep[i][0] == (unsigned char)(i & 0xff));
            free(keep[i]);
        }
    }
    /* Blocks the parent's threads handed out before the fork. */
    for (int s = 0; s < SHARED; s++) free(atomic_exchange(&shared[s], NULL));
    pthread_t t[4];
    for (uintptr_t i = 0; i < 4; i++) CHECK(pthread_create(&t[i], NULL, child_thread, (void *)i) == 0);
    for (int i = 0; i < 4; i++) CHECK(pthread_join(t[i], NULL) == 0);
    char *huge = malloc(64 << 20);
    CHECK(huge != NULL);
    memset(huge, 1, 64 << 20);
    free(huge);
    malloc_trim(0);
    return 0;
}

int main(void) {
    CHECK(malloc_is_ferroc());
    pthread_t t[WORKERS];
    for (uintptr_t i = 0; i < WORKERS; i++) CHECK(pthread_create(&t[i], NULL, worker, (void *)i) == 0);
    for (int f = 0; f < FORKS; f++) {
        usleep(2000);
        pid_t pid = fork();
        CHECK(pid >= 0);
        if (pid == 0) exit(child());
        int status = 0;
        CHECK(waitpid(pid, &status, 0) == pid);
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            fprintf(stderr, "child %d: %s %d\n", f, WIFSIGNALED(status) ? "killed by signal" : "exit status",
                    WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
            return 1;
        }
    }
    atomic_store(&stop, 1);
    for (int i = 0; i < WORKERS; i++) CHECK(pthread_join(t[i], NULL) == 0);
    for (int s = 0; s < SHARED; s++) free(atomic_exchange(&shared[s], NULL));
    printf("fork ok: %d children\n", FORKS);
    return 0;
}
