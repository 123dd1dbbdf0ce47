//! A table of at most `cap` rows: when a new row would pass the cap, the
//! least recently active quarter is dropped (and counted).

use std::cmp::Reverse;
use std::collections::HashMap;
use std::hash::Hash;

use crate::bounded::FastHash;

/// A row that a [`Table`] can drop when it is full.
pub(super) trait Row<K> {
    fn key(&self) -> K;
    fn last_seq(&self) -> u64;
}

#[derive(Debug, Clone)]
pub(super) struct Table<K, R> {
    pub(super) rows: Vec<R>,
    index: HashMap<K, usize, FastHash>,
    cap: usize,
    /// Rows dropped to stay under `cap`.
    pub(super) evicted: u64,
}

impl<K: Hash + Eq, R: Row<K>> Table<K, R> {
    pub(super) fn new(cap: usize) -> Self {
        Table {
            rows: Vec::new(),
            index: HashMap::default(),
            cap,
            evicted: 0,
        }
    }

    pub(super) fn find<Q>(&self, key: &Q) -> Option<usize>
    where
        K: std::borrow::Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.index.get(key).copied()
    }

    /// Adds a row; returns its index and whether other rows moved (a full
    /// table first drops its least recently active quarter).
    pub(super) fn insert(&mut self, key: K, row: R) -> (usize, bool) {
        let moved = self.rows.len() >= self.cap;
        if moved {
            let keep = self.cap - self.cap.div_ceil(4);
            self.rows.sort_unstable_by_key(|r| Reverse(r.last_seq()));
            self.evicted += (self.rows.len() - keep) as u64;
            self.rows.truncate(keep);
            self.index.clear();
            for (i, r) in self.rows.iter().enumerate() {
                self.index.insert(r.key(), i);
            }
        }
        self.rows.push(row);
        let i = self.rows.len() - 1;
        self.index.insert(key, i);
        (i, moved)
    }
}
