// Allocation before any constructor has run and after main has returned: a .preinit_array
// function (runs before every initialiser, libferroc's included), constructors, a
// thread_local destructor (main thread and worker threads), a pthread key destructor that
// runs after Ferroc's own thread-exit hook, atexit handlers, static destructors and a
// destructor function. Every hook allocates, frees and reports with write(2).
#include <malloc.h>
#include <pthread.h>

#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "check.h"

static void churn(const char *who) {
    void *blocks[64];
    for (int i = 0; i < 64; i++) {
        blocks[i] = malloc(hide(16 + size_t(i) * 40));
        CHECK(blocks[i] != nullptr);
        memset(blocks[i], i, 16);
    }
    void *big = calloc(hide(1), hide(size_t(3) << 20));
    CHECK(big != nullptr);
    blocks[0] = realloc(blocks[0], hide(5000));
    CHECK(blocks[0] != nullptr);
    for (int i = 0; i < 64; i++) free(blocks[i]);
    free(big);
    std::string s(who);
    s += " ok\n";
    say(s.c_str());
}

static void *early_block;

static void preinit() {
    // No C++ here: libstdc++ is not initialised yet.
    early_block = malloc(hide(100));
    CHECK(early_block != nullptr);
    memset(early_block, 0x5e, 100);
    void *p = calloc(hide(10), hide(10));
    CHECK(p != nullptr);
    p = realloc(p, hide(10000));
    CHECK(p != nullptr);
    free(p);
    void *a = nullptr;
    CHECK(posix_memalign(&a, 4096, hide(100)) == 0);
    free(a);
    say("preinit ok\n");
}

__attribute__((section(".preinit_array"), used)) static void (*preinit_hook)() = preinit;

__attribute__((constructor(101))) static void first_constructor() { churn("constructor"); }

__attribute__((destructor)) static void destructor_function() { churn("destructor function"); }

struct StaticObject {
    std::vector<std::string> strings;
    StaticObject() {
        for (int i = 0; i < 100; i++) strings.push_back(std::string(hide(50), 'a'));
    }
    ~StaticObject() {
        strings.clear();
        strings.shrink_to_fit();
        churn("static destructor");
    }
};
static StaticObject static_object;

struct ThreadObject {
    const char *who;
    std::vector<std::string> strings;
    explicit ThreadObject(const char *w) : who(w) {
        for (int i = 0; i < 20; i++) strings.push_back(std::string(hide(100), 'b'));
    }
    ~ThreadObject() {
        strings.clear();
        churn(who);
    }
};

static pthread_key_t late_key;

static void late_key_destructor(void *value) {
    free(value);
    // Runs after Ferroc's own thread-exit hook (its key was made first).
    void *p = malloc(hide(700));
    CHECK(p != nullptr);
    free(p);
}

static void *thread_main(void *) {
    thread_local ThreadObject object("thread_local destructor (thread)");
    CHECK(object.strings.size() == 20);
    CHECK(pthread_setspecific(late_key, malloc(hide(300))) == 0);
    return nullptr;
}

static void at_exit_handler() {
    CHECK(((unsigned char *)early_block)[99] == 0x5e);
    free(early_block);
    churn("atexit");
}

int main() {
    CHECK(malloc_is_ferroc());
    CHECK(ferroc_usable(early_block) >= 100);
    CHECK(atexit(at_exit_handler) == 0);
    CHECK(pthread_key_create(&late_key, late_key_destructor) == 0);
    pthread_t t[8];
    for (int round = 0; round < 4; round++) {
        for (auto &th : t) CHECK(pthread_create(&th, nullptr, thread_main, nullptr) == 0);
        for (auto &th : t) CHECK(pthread_join(th, nullptr) == 0);
    }
    thread_local ThreadObject main_object("thread_local destructor (main)");
    CHECK(main_object.strings.size() == 20);
    say("main ok\n");
    return 0;
}
