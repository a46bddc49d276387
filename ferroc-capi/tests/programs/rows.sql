-- 100,000 rows, an index, queries; the output does not depend on the allocator.
PRAGMA journal_mode = OFF;
CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT, grp INTEGER, payload TEXT);
WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 100000)
INSERT INTO t SELECT x, printf('name-%06d', (x * 7919) % 100000), x % 97,
                     substr(hex(zeroblob(x % 200)), 1, (x % 300)) FROM c;
CREATE INDEX t_name ON t (name);
CREATE INDEX t_grp ON t (grp, id);
SELECT count(*), sum(grp), sum(length(payload)) FROM t;
SELECT grp, count(*), min(name), max(name) FROM t GROUP BY grp ORDER BY grp LIMIT 5;
SELECT id, name FROM t WHERE name BETWEEN 'name-050000' AND 'name-050010' ORDER BY name;
SELECT count(DISTINCT name) FROM t;
SELECT group_concat(id, ',') FROM (SELECT id FROM t WHERE grp = 42 ORDER BY id DESC LIMIT 20);
DELETE FROM t WHERE id % 3 = 0;
VACUUM;
SELECT count(*), total(id) FROM t;
