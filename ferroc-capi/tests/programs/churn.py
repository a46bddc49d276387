# Builds and drops large dicts, lists and strings over several threads; prints checksums that
# do not depend on the allocator. Run with PYTHONMALLOC=malloc so every object is malloc'd.
import hashlib
import threading

THREADS = 8
ROUNDS = 3


def work(tid, results):
    h = hashlib.sha256()
    for r in range(ROUNDS):
        d = {f"key-{tid}-{r}-{i}": "v" * (i % 300) + str(i) for i in range(20000)}
        lst = [bytes([i % 256]) * (i % 1000) for i in range(5000)]
        s = "".join(str(i) for i in range(30000))
        nested = [{"a": [i] * (i % 50), "b": str(i) * 10} for i in range(3000)]
        h.update(str(len(d)).encode())
        h.update(str(sum(len(v) for v in d.values())).encode())
        h.update(str(sum(len(b) for b in lst)).encode())
        h.update(hashlib.sha256(s.encode()).digest())
        h.update(str(sum(len(x["a"]) for x in nested)).encode())
        big = bytearray(3 << 20)
        big[::4096] = b"x" * len(big[::4096])
        h.update(bytes(big[:4096 * 4]))
        del d, lst, s, nested, big
    results[tid] = h.hexdigest()


results = [None] * THREADS
threads = [threading.Thread(target=work, args=(t, results)) for t in range(THREADS)]
for t in threads:
    t.start()
for t in threads:
    t.join()
for tid, digest in enumerate(results):
    print(tid, digest)
