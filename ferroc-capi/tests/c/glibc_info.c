/* malloc_info under LD_PRELOAD=libferroc.so: EINVAL for options != 0, then the XML document
 * on stdout with small, medium, large and huge blocks live (the test parses it): 1000 blocks
 * of 4000 and of 100000 bytes, 500 of 48 (1000 allocated, every other one freed). */
#include <errno.h>
#include <malloc.h>

#include "check.h"

int main(void) {
    static void *blocks[3000];
    for (int i = 0; i < 1000; i++) blocks[i] = malloc(hide(48));
    for (int i = 1000; i < 2000; i++) blocks[i] = malloc(hide(4000));
    for (int i = 2000; i < 3000; i++) blocks[i] = malloc(hide(100000));
    for (int i = 0; i < 3000; i++) CHECK(blocks[i] != NULL);
    void *huge = malloc(hide(16 << 20));
    CHECK(huge != NULL);
    for (int i = 1; i < 1000; i += 2) {
        free(blocks[i]);
        blocks[i] = NULL;
    }
    CHECK(malloc_info(1, stdout) == EINVAL);
    CHECK(malloc_info(0, stdout) == 0);
    fflush(stdout);
    free(huge);
    for (int i = 0; i < 3000; i++) free(blocks[i]);
    return 0;
}
