//! The loom models of the arenas' lock-free parts, each driving the real type under loom's
//! atomics (`--cfg ferroc_loom`):
//! - `abandoned.rs`: [`crate::abandoned::AbandonedSet`], abandon racing reclaim;
//! - `arena_list.rs`: [`crate::arena_list::ArenaList`], publishers racing for slots while a
//!   reader walks them;
//! - `purge_clock.rs`: [`crate::purge_clock`], a release racing a purger (no deadline lost),
//!   and two purgers racing for one due deadline (exactly one scans).

mod abandoned;
mod arena_list;
mod purge_clock;
