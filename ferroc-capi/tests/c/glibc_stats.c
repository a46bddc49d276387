/* malloc_stats under LD_PRELOAD=libferroc.so: prints Ferroc's table to stderr. Prints
 * "malloc_stats ok" on stdout after. */
#include <malloc.h>

#include "check.h"

int main(void) {
    void *blocks[1000];
    for (int i = 0; i < 1000; i++) {
        blocks[i] = malloc(hide(100));
        CHECK(blocks[i] != NULL);
    }
    void *huge = malloc(hide(8 << 20));
    CHECK(huge != NULL);
    fflush(stdout);
    malloc_stats();
    free(huge);
    for (int i = 0; i < 1000; i++) free(blocks[i]);
    printf("malloc_stats ok\n");
    return 0;
}
