/* churn: small-object churn in one thread, the shape of compilers and symbolic math (cfrac).
 * A live set of <live> blocks of 16-1024 bytes; <ops> times a random one is checked, freed and
 * replaced by a block of a new random size, and every 8th operation also reads a random live
 * block, as a program walking its data would.
 * Usage: churn <threads (unused)> <live> <ops> */
#include "common.h"

int main(int argc, char **argv) {
    size_t live = (size_t)arg_long(argc, argv, 2, 100000);
    long ops = arg_long(argc, argv, 3, 10000000);
    rng_t r = rng_seed(1, live);
    block_t *slots = xmalloc(live * sizeof *slots);
    uint64_t sum = 0;
    fill_small(slots, live, &r);
    for (long k = 0; k < ops; k++) {
        sum += replace_small(slots, live, &r);
        if ((k & 7) == 0) {
            block_t *o = &slots[rng_below(&r, live)];
            sum ^= check_block(o->p, o->n) >> 1;
        }
    }
    for (size_t i = 0; i < live; i++) {
        sum += check_block(slots[i].p, slots[i].n);
        free(slots[i].p);
    }
    free(slots);
    print_checksum(sum);
    return 0;
}
