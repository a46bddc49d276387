// Every C++ allocation function lands in Ferroc; throwing new runs the new-handler and throws
// std::bad_alloc. Linked with -lferroc or run with LD_PRELOAD=libferroc.so.
#include <dlfcn.h>
#include <malloc.h>
#include <sys/resource.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>
#include <stdexcept>
#include <string>

#include "check.h"

using std::size_t;

static const std::nothrow_t &nt = std::nothrow;

// The library a function's code lies in.
static void expect_ferroc(const char *what, void *fn) {
    Dl_info info;
    CHECK(dladdr(fn, &info) != 0);
    if (!info.dli_fname || !strstr(info.dli_fname, "libferroc")) {
        fprintf(stderr, "%s resolves to %s, not libferroc\n", what,
                info.dli_fname ? info.dli_fname : "?");
        exit(1);
    }
}

#define FORM(type, name) expect_ferroc(#type, reinterpret_cast<void *>(static_cast<type>(name)))

static void check_forms_resolve_to_ferroc() {
    using A = std::align_val_t;
    using N = const std::nothrow_t &;
    FORM(void *(*)(size_t), &::operator new);
    FORM(void *(*)(size_t, N), &::operator new);
    FORM(void *(*)(size_t, A), &::operator new);
    FORM(void *(*)(size_t, A, N), &::operator new);
    FORM(void *(*)(size_t), &::operator new[]);
    FORM(void *(*)(size_t, N), &::operator new[]);
    FORM(void *(*)(size_t, A), &::operator new[]);
    FORM(void *(*)(size_t, A, N), &::operator new[]);
    FORM(void (*)(void *), &::operator delete);
    FORM(void (*)(void *, size_t), &::operator delete);
    FORM(void (*)(void *, A), &::operator delete);
    FORM(void (*)(void *, size_t, A), &::operator delete);
    FORM(void (*)(void *, N), &::operator delete);
    FORM(void (*)(void *, A, N), &::operator delete);
    FORM(void (*)(void *), &::operator delete[]);
    FORM(void (*)(void *, size_t), &::operator delete[]);
    FORM(void (*)(void *, A), &::operator delete[]);
    FORM(void (*)(void *, size_t, A), &::operator delete[]);
    FORM(void (*)(void *, N), &::operator delete[]);
    FORM(void (*)(void *, A, N), &::operator delete[]);
    FORM(void *(*)(size_t), &malloc);
    FORM(void (*)(void *), &free);
    say("ok forms resolve to libferroc\n");
}

// A block of Ferroc, `n` bytes usable, aligned to `a`, written through.
static void *ours(void *p, size_t n, size_t a) {
    CHECK(p != nullptr);
    CHECK(ferroc_usable(p) >= n);
    CHECK(reinterpret_cast<uintptr_t>(p) % a == 0);
    memset(p, 0x6b, n);
    return p;
}

static void check_every_form_allocates_from_ferroc() {
    using A = std::align_val_t;
    for (size_t n : {size_t(0), size_t(1), size_t(24), size_t(1000), size_t(100000), size_t(5) << 20}) {
        size_t h = hide(n);
        // new / delete
        ::operator delete(ours(::operator new(h), n, 1));
        ::operator delete(ours(::operator new(h), n, 1), h);
        ::operator delete(ours(::operator new(h, nt), n, 1), nt);
        ::operator delete(ours(::operator new(h, nt), n, 1));
        // new[] / delete[]
        ::operator delete[](ours(::operator new[](h), n, 1));
        ::operator delete[](ours(::operator new[](h), n, 1), h);
        ::operator delete[](ours(::operator new[](h, nt), n, 1), nt);
        for (size_t a = 1; a <= (size_t(1) << 21); a *= 8) {
            A al{a};
            ::operator delete(ours(::operator new(h, al), n, a), al);
            ::operator delete(ours(::operator new(h, al), n, a), h, al);
            ::operator delete(ours(::operator new(h, al, nt), n, a), al, nt);
            ::operator delete[](ours(::operator new[](h, al), n, a), al);
            ::operator delete[](ours(::operator new[](h, al), n, a), h, al);
            ::operator delete[](ours(::operator new[](h, al, nt), n, a), al, nt);
        }
    }
    // new-expressions, over-aligned types included.
    struct alignas(256) Wide {
        char bytes[300];
    };
    for (int i = 0; i < 100; i++) {
        Wide *w = new Wide;
        ours(w, sizeof(Wide), 256);
        delete w;
        Wide *ws = new Wide[hide(7)];
        ours(ws, 7 * sizeof(Wide), 256);
        delete[] ws;
        std::string *s = new std::string(hide(1000), 'x');
        CHECK(ferroc_usable(s) >= sizeof(std::string));
        CHECK(ferroc_usable(s->data()) >= 1000);
        delete s;
    }
    say("ok every form allocates from ferroc\n");
}

static const size_t kHuge = size_t(1) << 62;

static void check_bad_alloc_without_handler() {
    CHECK(std::get_new_handler() == nullptr);
    using A = std::align_val_t;
    int thrown = 0;
    try {
        (void)::operator new(hide(kHuge));
    } catch (const std::bad_alloc &) {
        thrown++;
    }
    try {
        (void)::operator new[](hide(SIZE_MAX));
    } catch (const std::bad_alloc &) {
        thrown++;
    }
    try {
        (void)::operator new(hide(kHuge), A{64});
    } catch (const std::bad_alloc &) {
        thrown++;
    }
    try {
        (void)::operator new[](hide(kHuge), A{4096});
    } catch (const std::bad_alloc &) {
        thrown++;
    }
    try {
        char *p = new char[hide(kHuge)];
        CHECK(p == nullptr && "new char[huge] returned");
    } catch (const std::bad_alloc &) {
        thrown++;
    }
    CHECK(thrown == 5);
    CHECK(::operator new(hide(kHuge), nt) == nullptr);
    CHECK(::operator new[](hide(kHuge), nt) == nullptr);
    CHECK(::operator new(hide(kHuge), A{64}, nt) == nullptr);
    CHECK(::operator new[](hide(kHuge), A{64}, nt) == nullptr);
    CHECK(new (std::nothrow) char[hide(kHuge)] == nullptr);
    say("ok bad_alloc without a new-handler\n");
}

static int handler_calls;

static void give_up_on_third_call() {
    if (++handler_calls == 3) std::set_new_handler(nullptr);
}

struct HandlerError : std::runtime_error {
    HandlerError() : std::runtime_error("from the new-handler") {}
};

static void throwing_handler() {
    handler_calls++;
    throw HandlerError();
}

static void check_handler_runs_until_none() {
    handler_calls = 0;
    std::set_new_handler(give_up_on_third_call);
    bool thrown = false;
    try {
        (void)::operator new(hide(kHuge));
    } catch (const std::bad_alloc &) {
        thrown = true;
    }
    CHECK(thrown && handler_calls == 3);
    // A handler's own exception comes through operator new.
    handler_calls = 0;
    std::set_new_handler(throwing_handler);
    thrown = false;
    try {
        (void)::operator new[](hide(kHuge), std::align_val_t{128});
    } catch (const HandlerError &) {
        thrown = true;
    }
    CHECK(thrown && handler_calls == 1);
    std::set_new_handler(nullptr);
    say("ok new-handler runs until there is none\n");
}

static void *ballast;

static void release_ballast() {
    handler_calls++;
    if (ballast) {
        free(ballast);
        ballast = nullptr;
        malloc_trim(0);
    } else {
        std::set_new_handler(nullptr);
    }
}

// Bytes of address space in use, from /proc/self/status.
static size_t vm_size() {
    FILE *f = fopen("/proc/self/status", "r");
    CHECK(f != nullptr);
    char line[256];
    size_t kb = 0;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "VmSize: %zu kB", &kb) == 1) break;
    fclose(f);
    CHECK(kb > 0);
    return kb << 10;
}

static void check_handler_until_success() {
    // Address space is limited; 1 GiB of ballast is held. The allocation of 512 MiB fails
    // until the handler frees the ballast, then succeeds.
    ballast = malloc(hide(size_t(1) << 30));
    CHECK(ballast != nullptr);
    struct rlimit old;
    CHECK(getrlimit(RLIMIT_AS, &old) == 0);
    struct rlimit lim = old;
    lim.rlim_cur = vm_size() + (size_t(128) << 20);
    CHECK(setrlimit(RLIMIT_AS, &lim) == 0);
    handler_calls = 0;
    std::set_new_handler(release_ballast);
    char *p = static_cast<char *>(::operator new(hide(size_t(512) << 20)));
    std::set_new_handler(nullptr);
    CHECK(setrlimit(RLIMIT_AS, &old) == 0);
    CHECK(p != nullptr && handler_calls == 1 && ballast == nullptr);
    CHECK(ferroc_usable(p) >= (size_t(512) << 20));
    p[0] = 1;
    p[(size_t(512) << 20) - 1] = 1;
    ::operator delete(p);
    say("ok new-handler runs until the allocation succeeds\n");
}

int main() {
    CHECK(malloc_is_ferroc());
    check_forms_resolve_to_ferroc();
    check_every_form_allocates_from_ferroc();
    check_bad_alloc_without_handler();
    check_handler_runs_until_none();
    check_handler_until_success();
    return 0;
}
