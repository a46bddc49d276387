//! glibc's introspection under `LD_PRELOAD=libferroc.so`, answered by Ferroc: `mallinfo2` and
//! `mallinfo` (tests/c/glibc_mallinfo.c), `malloc_stats` (glibc_stats.c), `malloc_info`
//! (glibc_info.c, its XML checked with python3's parser). `header.rs` checks the exports.

use std::{fs, process::Command};

use crate::support::{self, Lang, Link, compile, stdout, tool_output};

#[test]
fn mallinfo_numbers_move_and_saturate() {
    let prog = compile(
        "glibc-mallinfo",
        Lang::C,
        &["glibc_mallinfo.c"],
        Link::Preload,
        // glibc marks `mallinfo` deprecated; it is what this test calls.
        &["-Wno-deprecated-declarations"],
    );
    let out = prog.run_ok(&[]);
    let text = stdout(&out);
    assert!(text.contains("mallinfo ok"), "{text}");
}

#[test]
fn malloc_stats_prints_ferrocs_table() {
    let prog = compile(
        "glibc-stats",
        Lang::C,
        &["glibc_stats.c"],
        Link::Preload,
        &[],
    );
    let out = prog.run_ok(&[]);
    assert!(stdout(&out).contains("malloc_stats ok"));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("ferroc statistics"), "{err}");
    for line in ["reserved", "committed", "in use", "huge: 1 blocks"] {
        assert!(err.contains(line), "no `{line}` in:\n{err}");
    }
    // Not glibc's report.
    assert!(!err.contains("Arena 0:"), "{err}");
    if cfg!(feature = "stat") {
        assert!(err.contains("live:"), "{err}");
    }
}

/// Checks the document with python3's XML parser; prints `ok` or fails.
const CHECK_XML: &str = r#"
import sys, xml.etree.ElementTree as ET
stat = sys.argv[2] == "stat"
root = ET.parse(sys.argv[1]).getroot()
assert root.tag == "malloc" and root.get("version") == "1", root.attrib
assert root.get("allocator") == "ferroc", root.attrib
heaps = root.findall("heap")
assert len(heaps) == 1 and heaps[0].get("nr") == "0"
heap = heaps[0]
sizes = heap.find("sizes").findall("size")
for s in sizes:
    lo, hi, total, count = (int(s.get(k)) for k in ("from", "to", "total", "count"))
    assert lo <= hi and total >= 0 and count >= 0, s.attrib
assert sizes[-1].get("class") == "huge" and sizes[-1].get("kind") == "huge", sizes[-1].attrib
huge = sizes[-1]
assert int(huge.get("count")) >= 1 and int(huge.get("total")) >= 16 << 20, huge.attrib
classes = sizes[:-1]
f = root.find("ferroc")
v = {k: int(f.get(k)) for k in f.keys() if k not in ("version", "stat")}
if stat:
    # One line per size class with live blocks, in order: `from` is the class below's size
    # + 1, `total` the live blocks times the class size; with the huge line they add up to
    # the live figures (one thread: exact).
    assert len(classes) >= 3, [s.attrib for s in sizes]
    by_size = {}
    last = None
    for s in classes:
        c, lo, hi, total, count = (int(s.get(k)) for k in ("class", "from", "to", "total", "count"))
        assert count >= 1 and total == count * hi, s.attrib
        assert last is None or c > last[0], (last, s.attrib)
        if last is not None and c == last[0] + 1:
            assert lo == last[1] + 1, (last, s.attrib)
        assert s.get("kind") in ("small", "medium", "large"), s.attrib
        last = (c, hi)
        by_size[hi] = s
    def holding(n):
        return next(s for hi, s in sorted(by_size.items()) if hi >= n and int(s.get("from")) <= n)
    small, medium, large = holding(48), holding(4000), holding(100000)
    assert small.get("to") == "48" and small.get("kind") == "small", small.attrib
    # 1000 allocated, every other one freed before the report.
    assert 500 <= int(small.get("count")) < 1000, small.attrib
    assert medium.get("kind") == "medium" and int(medium.get("count")) >= 1000, medium.attrib
    assert large.get("kind") == "large" and int(large.get("count")) >= 1000, large.attrib
    assert int(large.get("total")) >= 100000 * 1000, large.attrib
    assert sum(int(s.get("total")) for s in sizes) == v["live-bytes"], v
    assert sum(int(s.get("count")) for s in sizes) == v["live-blocks"], v
else:
    # Without `stat`, the huge blocks alone (counted by the arenas).
    assert classes == [], [s.attrib for s in sizes]
for where in (heap, root):
    types = {(t.tag, t.get("type")) for t in where if t.tag in ("total", "system", "aspace")}
    for want in [("total", "fast"), ("total", "rest"), ("system", "current"), ("system", "max"),
                 ("aspace", "total"), ("aspace", "mprotect")]:
        assert want in types, (want, types)
mmap = [t for t in root.findall("total") if t.get("type") == "mmap"]
assert len(mmap) == 1 and int(mmap[0].get("count")) >= 1, mmap
system = {s.get("type"): int(s.get("size")) for s in root.findall("system")}
assert system["max"] >= system["current"] >= 16 << 20, system
assert f.get("stat") == ("yes" if stat else "no")
assert v["peak-live"] >= v["live-bytes"] > 16 << 20, v
assert v["peak-in-use"] >= v["in-use"] >= v["live-bytes"], v
assert v["peak-committed"] >= v["committed"] >= v["in-use"], v
assert v["peak-reserved"] >= v["reserved"] >= v["committed"], v
print("ok")
"#;

#[test]
fn malloc_info_writes_glibcs_xml_naming_ferroc() {
    support::require("python3", "python3");
    let prog = compile("glibc-info", Lang::C, &["glibc_info.c"], Link::Preload, &[]);
    let out = prog.run_ok(&[]);
    let xml = stdout(&out);
    assert!(xml.contains("<!-- ferroc "), "{xml}");
    let dir = support::temp_dir("glibc-info");
    let file = dir.join("info.xml");
    fs::write(&file, &xml).unwrap();
    let verdict = tool_output(
        Command::new("python3")
            .args(["-c", CHECK_XML])
            .arg(&file)
            .arg(if cfg!(feature = "stat") {
                "stat"
            } else {
                "plain"
            }),
    );
    assert_eq!(verdict.trim(), "ok", "{xml}");
}
