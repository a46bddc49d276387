/* realloc: growth by realloc, in one thread.
 * - String builders: 64 strings are built side by side, a random one getting 1-64 more bytes at
 *   each step through realloc to the exact new length; a string that reaches its target length
 *   (256 bytes to 256 KiB) is checked, freed and started anew. <appends> steps in all.
 * - Vectors: <vectors> times, 4 vectors grow side by side from 16 bytes to 1-17 MiB, doubling
 *   their capacity by realloc when full, every element written as it is pushed.
 * Usage: realloc <threads (unused)> <appends> <vectors> */
#include "common.h"

#define STRINGS 64

typedef struct {
    unsigned char *p;
    size_t len, target;
    uint64_t seed;
} string_t;

static inline unsigned char byte_at(uint64_t seed, size_t i) {
    return (unsigned char)(seed + i * 31 + (i >> 8));
}

static uint64_t finish_string(string_t *s) {
    uint64_t sum = 0;
    for (size_t i = 0; i < s->len; i += 61) {
        if (s->p[i] != byte_at(s->seed, i))
            die("a string's contents changed");
        sum += s->p[i];
    }
    free(s->p);
    return sum + s->len;
}

static void start_string(string_t *s, rng_t *r) {
    s->p = NULL;
    s->len = 0;
    s->target = 256 + rng_below(r, 256 * 1024);
    s->seed = rng_next(r);
}

int main(int argc, char **argv) {
    long appends = arg_long(argc, argv, 2, 2000000);
    long vectors = arg_long(argc, argv, 3, 200);
    rng_t r = rng_seed(3, (uint64_t)appends);
    uint64_t sum = 0;

    string_t strings[STRINGS];
    for (int i = 0; i < STRINGS; i++)
        start_string(&strings[i], &r);
    for (long k = 0; k < appends; k++) {
        string_t *s = &strings[rng_below(&r, STRINGS)];
        size_t add = 1 + rng_below(&r, 64);
        unsigned char *p = realloc(s->p, s->len + add);
        if (p == NULL)
            die("realloc failed");
        for (size_t i = 0; i < add; i++)
            p[s->len + i] = byte_at(s->seed, s->len + i);
        s->p = p;
        s->len += add;
        if (s->len >= s->target) {
            sum += finish_string(s);
            start_string(s, &r);
        }
    }
    for (int i = 0; i < STRINGS; i++)
        if (strings[i].p != NULL)
            sum += finish_string(&strings[i]);

    for (long v = 0; v < vectors; v++) {
        uint64_t *vec[4];
        size_t len[4] = {0}, cap[4], goal[4];
        for (int j = 0; j < 4; j++) {
            cap[j] = 2;
            vec[j] = xmalloc(cap[j] * sizeof(uint64_t));
            goal[j] = (1 << 17) + rng_below(&r, 2 << 20); /* elements: 1-17 MiB */
        }
        for (int active = 4; active > 0;) {
            active = 0;
            for (int j = 0; j < 4; j++) {
                if (len[j] >= goal[j])
                    continue;
                active++;
                for (int e = 0; e < 64 && len[j] < goal[j]; e++) {
                    if (len[j] == cap[j]) {
                        cap[j] *= 2;
                        vec[j] = realloc(vec[j], cap[j] * sizeof(uint64_t));
                        if (vec[j] == NULL)
                            die("realloc failed");
                    }
                    vec[j][len[j]] = len[j] * 7 + (uint64_t)v;
                    len[j]++;
                }
            }
        }
        for (int j = 0; j < 4; j++) {
            for (size_t i = 0; i < len[j]; i += 1021) {
                if (vec[j][i] != i * 7 + (uint64_t)v)
                    die("a vector's contents changed");
                sum += vec[j][i];
            }
            free(vec[j]);
        }
    }
    print_checksum(sum);
    return 0;
}
