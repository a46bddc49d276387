/* peak-fall: a long-running program whose live size rises to a peak and falls, to see whether
 * the allocator gives memory back to the OS.
 * 1. Rise: allocate blocks of 16 bytes to 8 KiB until <peak_mib> MiB are live.
 * 2. Fall: free all but 1 in <keep> of them, in random order (the survivors are scattered, as
 *    the long-lived objects of a real program are).
 * 3. Work: <ops> replacements of random blocks in a live set of about 4 MiB of small blocks.
 * At the end it prints `rss_kib:`, its resident memory then: what the program still holds from
 * its peak (peak RSS alone says little here).
 * Usage: peakfall <threads (unused)> <peak_mib> <ops> <keep> */
#include "common.h"

static size_t rise_size(rng_t *r) {
    return rng_below(r, 4) == 0 ? 1024 + rng_below(r, 7 * 1024) : small_size(r, 16);
}

int main(int argc, char **argv) {
    size_t peak = (size_t)arg_long(argc, argv, 2, 1024) << 20;
    long ops = arg_long(argc, argv, 3, 20000000);
    size_t keep = (size_t)arg_long(argc, argv, 4, 4096);
    rng_t r = rng_seed(13, peak);
    uint64_t sum = 0;

    size_t cap = 1 << 16, count = 0, live = 0;
    block_t *big = xmalloc(cap * sizeof *big);
    while (live < peak) {
        if (count == cap) {
            cap *= 2;
            big = realloc(big, cap * sizeof *big);
            if (big == NULL)
                die("realloc failed");
        }
        size_t n = rise_size(&r);
        big[count].n = n;
        big[count].p = xmalloc(n);
        memset(big[count].p, (int)(count & 0xff), n);
        tag_block(big[count].p, n, rng_next(&r));
        live += n;
        count++;
    }
    /* Fall: a random permutation of the blocks, keeping 1 in <keep>. */
    size_t *order = xmalloc(count * sizeof *order);
    for (size_t i = 0; i < count; i++)
        order[i] = i;
    for (size_t i = count - 1; i > 0; i--) {
        size_t j = (size_t)rng_below(&r, i + 1), t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
    for (size_t i = 0; i < count; i++) {
        block_t *s = &big[order[i]];
        if (order[i] % keep == 0)
            continue;
        sum += check_block(s->p, s->n);
        free(s->p);
        s->p = NULL;
    }
    free(order);

    size_t small = 4 << 20;
    size_t nwork = small / 140;
    block_t *work = xmalloc(nwork * sizeof *work);
    fill_small(work, nwork, &r);
    for (long k = 0; k < ops; k++)
        sum += replace_small(work, nwork, &r);
    print_rss("rss_kib");
    for (size_t i = 0; i < nwork; i++) {
        sum += check_block(work[i].p, work[i].n);
        free(work[i].p);
    }
    for (size_t i = 0; i < count; i++) {
        if (big[i].p != NULL) {
            sum += check_block(big[i].p, big[i].n);
            free(big[i].p);
        }
    }
    free(work);
    free(big);
    print_checksum(sum);
    return 0;
}
