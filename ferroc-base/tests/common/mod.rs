//! What the kernel says about our mappings and its huge pages (`/proc/self/smaps`, `/sys`),
//! for the large-pages tests.
#![allow(dead_code)]

/// One mapping of `/proc/self/smaps` with the fields the tests read, in KiB.
#[derive(Debug, Default, Clone)]
pub struct Vma {
    pub start: usize,
    pub end: usize,
    pub kernel_page_kb: usize,
    pub rss_kb: usize,
    pub anon_huge_kb: usize,
    pub hugetlb_kb: usize,
}

/// Every mapping of the process.
pub fn vmas() -> Vec<Vma> {
    let text = std::fs::read_to_string("/proc/self/smaps").unwrap();
    let mut out: Vec<Vma> = Vec::new();
    for line in text.lines() {
        let first = line.split_whitespace().next().unwrap_or("");
        if let Some((a, b)) = first.split_once('-')
            && let (Ok(start), Ok(end)) =
                (usize::from_str_radix(a, 16), usize::from_str_radix(b, 16))
        {
            out.push(Vma {
                start,
                end,
                ..Vma::default()
            });
            continue;
        }
        let Some((key, rest)) = line.split_once(':') else {
            continue;
        };
        let Some(vma) = out.last_mut() else { continue };
        let kb = || {
            rest.split_whitespace()
                .next()
                .and_then(|v| v.parse::<usize>().ok())
                .unwrap_or(0)
        };
        match key {
            "KernelPageSize" => vma.kernel_page_kb = kb(),
            "Rss" => vma.rss_kb = kb(),
            "AnonHugePages" => vma.anon_huge_kb = kb(),
            "Private_Hugetlb" | "Shared_Hugetlb" => vma.hugetlb_kb += kb(),
            _ => {}
        }
    }
    out
}

/// The mappings that overlap any of `ranges` (`(start, len)`).
pub fn vmas_of(ranges: &[(usize, usize)]) -> Vec<Vma> {
    vmas()
        .into_iter()
        .filter(|v| ranges.iter().any(|&(s, l)| v.start < s + l && s < v.end))
        .collect()
}

/// The mapping that holds `addr`.
pub fn vma_at(addr: usize) -> Vma {
    vmas()
        .into_iter()
        .find(|v| v.start <= addr && addr < v.end)
        .unwrap_or_else(|| panic!("{addr:#x} is not mapped"))
}

/// The first number in a `/sys` or `/proc` file, if it exists.
pub fn read_number(path: &str) -> Option<usize> {
    std::fs::read_to_string(path)
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// The THP mode in force (`always`, `madvise` or `never`), if the kernel has THP.
pub fn thp_mode() -> Option<String> {
    let text = std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/enabled").ok()?;
    let open = text.find('[')?;
    let close = text[open..].find(']')? + open;
    Some(text[open + 1..close].to_string())
}

/// Free reserved 2 MiB hugetlb pages.
pub fn free_2m_pages() -> usize {
    read_number("/sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages").unwrap_or(0)
}

/// Free reserved 1 GiB hugetlb pages.
pub fn free_1g_pages() -> usize {
    read_number("/sys/kernel/mm/hugepages/hugepages-1048576kB/free_hugepages").unwrap_or(0)
}

/// Writes one byte in every `page` of `[ptr, ptr + len)`, as a live heap would.
///
/// # Safety
///
/// The range is the caller's own committed memory.
pub unsafe fn touch(ptr: *mut u8, len: usize, page: usize, value: u8) {
    for off in (0..len).step_by(page) {
        // SAFETY: `off < len`: the offset stays inside the caller's range (this fn's contract).
        let at = unsafe { ptr.add(off) };
        // SAFETY: `at` is in the caller's own committed memory (this fn's contract).
        unsafe { at.write_volatile(value) };
    }
}
