/* dlopen of libferroc.so built with the `dlopen` feature (general-dynamic TLS): fe_malloc and
 * fe_free work from threads made before and after the library was loaded, and blocks freed
 * by another thread. The program's own malloc stays glibc's (RTLD_LOCAL).
 *
 * Usage: dlopen <path to libferroc.so>. */
#include <pthread.h>

#include "check.h"

static void *(*fe_malloc_p)(size_t);
static void (*fe_free_p)(void *);
static size_t (*fe_usable_p)(const void *);
static pthread_barrier_t loaded;
static void *handed[16];

static void work(int id) {
    uint64_t rng = (uint64_t)id * 31 + 7;
    void *ring[32] = {0};
    for (int i = 0; i < 20000; i++) {
        unsigned slot = (unsigned)(i % 32);
        if (ring[slot]) {
            CHECK(((unsigned char *)ring[slot])[0] == (unsigned char)slot);
            fe_free_p(ring[slot]);
        }
        size_t n = 1 + rng_next(&rng) % 3000;
        ring[slot] = fe_malloc_p(n);
        CHECK(ring[slot] != NULL && fe_usable_p(ring[slot]) >= n);
        memset(ring[slot], (int)slot, n);
    }
    for (int s = 0; s < 32; s++) fe_free_p(ring[s]);
    handed[id] = fe_malloc_p(1000);
    CHECK(handed[id] != NULL);
}

static void *early_thread(void *arg) {
    pthread_barrier_wait(&loaded); /* started before dlopen, allocates after it */
    work((int)(uintptr_t)arg);
    return NULL;
}

static void *late_thread(void *arg) {
    work((int)(uintptr_t)arg);
    return NULL;
}

int main(int argc, char **argv) {
    CHECK(argc == 2);
    CHECK(pthread_barrier_init(&loaded, NULL, 5) == 0);
    pthread_t t[8];
    for (uintptr_t i = 0; i < 4; i++) CHECK(pthread_create(&t[i], NULL, early_thread, (void *)i) == 0);
    void *lib = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
        fprintf(stderr, "dlopen: %s\n", dlerror());
        return 1;
    }
    fe_malloc_p = (void *(*)(size_t))dlsym(lib, "fe_malloc");
    fe_free_p = (void (*)(void *))dlsym(lib, "fe_free");
    fe_usable_p = (size_t (*)(const void *))dlsym(lib, "fe_malloc_usable_size");
    CHECK(fe_malloc_p && fe_free_p && fe_usable_p);
    pthread_barrier_wait(&loaded);
    for (uintptr_t i = 4; i < 8; i++) CHECK(pthread_create(&t[i], NULL, late_thread, (void *)i) == 0);
    work(8);
    for (int i = 0; i < 8; i++) CHECK(pthread_join(t[i], NULL) == 0);
    for (int i = 0; i <= 8; i++) fe_free_p(handed[i]); /* blocks of exited threads */
    /* malloc is still glibc's: Ferroc does not know its blocks. */
    void *g = malloc(hide(100));
    CHECK(g != NULL && fe_usable_p(g) == 0);
    free(g);
    printf("dlopen ok\n");
    return 0;
}
