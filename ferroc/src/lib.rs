//! Filled by a later issue: see the README for the layering.
