/* N malloc+free pairs of one size: the program callgrind.sh measures.
 *
 * Usage: pairs <pairs> [size] [alone|kept]. With `kept` (the default), another block of the
 * same size stays allocated, so a pair never empties its page (the common case in a real
 * program); with `alone`, every free empties the page, which some allocators then retire. */
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv) {
    long n = argc > 1 ? atol(argv[1]) : 1000;
    size_t size = argc > 2 ? (size_t)atol(argv[2]) : 16;
    int kept = argc <= 3 || strcmp(argv[3], "alone") != 0;
    void *keeper = kept ? malloc(size) : NULL;
    __asm__ volatile("" : : "r"(keeper) : "memory");
    for (long i = 0; i < n; i++) {
        void *p = malloc(size);
        /* The block escapes, so the pair is not folded away. */
        __asm__ volatile("" : : "r"(p) : "memory");
        free(p);
    }
    free(keeper);
    return 0;
}
