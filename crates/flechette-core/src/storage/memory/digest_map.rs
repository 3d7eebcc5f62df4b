//! A map keyed by digests, in insertion order with swap removal (so an
//! entry can be picked by its position, for sampling and sweeps), at the
//! least memory per entry: the entries in one vector, a table of 32-bit
//! positions over them, and no stored hash (a digest's first eight bytes
//! are its hash, uniform already).

use hashbrown::HashTable;

use crate::Digest;

fn hash(d: &Digest) -> u64 {
    let mut word = [0; 8];
    word.copy_from_slice(&d.as_bytes()[..8]);
    u64::from_le_bytes(word)
}

/// What a slot costs besides its entry: the key, and a position and a
/// control byte in the table.
pub(super) const SLOT: usize = 32 + 4 + 1;

#[derive(Debug)]
pub(super) struct DigestMap<V> {
    table: HashTable<u32>,
    entries: Vec<(Digest, V)>,
}

impl<V> Default for DigestMap<V> {
    fn default() -> Self {
        Self {
            table: HashTable::new(),
            entries: Vec::new(),
        }
    }
}

impl<V> DigestMap<V> {
    pub(super) fn len(&self) -> usize {
        self.entries.len()
    }

    pub(super) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub(super) fn get_index_of(&self, key: &Digest) -> Option<usize> {
        let entries = &self.entries;
        self.table
            .find(hash(key), |&i| entries[i as usize].0 == *key)
            .map(|&i| i as usize)
    }

    pub(super) fn get(&self, key: &Digest) -> Option<&V> {
        self.get_index_of(key).map(|i| &self.entries[i].1)
    }

    pub(super) fn get_mut(&mut self, key: &Digest) -> Option<&mut V> {
        self.get_index_of(key).map(|i| &mut self.entries[i].1)
    }

    pub(super) fn contains_key(&self, key: &Digest) -> bool {
        self.get_index_of(key).is_some()
    }

    /// The entry at `index`, in `0..len()`.
    pub(super) fn get_index(&self, index: usize) -> Option<(&Digest, &V)> {
        self.entries.get(index).map(|(k, v)| (k, v))
    }

    /// The value at `index`.
    ///
    /// # Panics
    ///
    /// If `index` is not below `len()`.
    pub(super) fn at(&self, index: usize) -> &V {
        &self.entries[index].1
    }

    /// The value at `index`, to change.
    ///
    /// # Panics
    ///
    /// If `index` is not below `len()`.
    pub(super) fn at_mut(&mut self, index: usize) -> &mut V {
        &mut self.entries[index].1
    }

    pub(super) fn first(&self) -> Option<(&Digest, &V)> {
        self.get_index(0)
    }

    /// Stores `value` under `key`, in the place of the value there if any
    /// (which is returned), else at the end.
    pub(super) fn insert(&mut self, key: Digest, value: V) -> Option<V> {
        if let Some(i) = self.get_index_of(&key) {
            return Some(std::mem::replace(&mut self.entries[i].1, value));
        }
        let index = u32::try_from(self.entries.len()).expect("fewer than 2^32 entries a map");
        let entries = &self.entries;
        self.table
            .insert_unique(hash(&key), index, |&i| hash(&entries[i as usize].0));
        self.entries.push((key, value));
        None
    }

    pub(super) fn swap_remove(&mut self, key: &Digest) -> Option<V> {
        let i = self.get_index_of(key)?;
        self.swap_remove_index(i).map(|(_, v)| v)
    }

    /// Removes the entry at `index`; the last entry takes its place.
    pub(super) fn swap_remove_index(&mut self, index: usize) -> Option<(Digest, V)> {
        let key = self.entries.get(index)?.0;
        let at = index as u32;
        match self.table.find_entry(hash(&key), |&i| i == at) {
            Ok(slot) => drop(slot.remove()),
            Err(_) => unreachable!("every entry has its slot"),
        }
        let last = self.entries.len() - 1;
        if index != last {
            let moved = hash(&self.entries[last].0);
            let from = last as u32;
            if let Some(slot) = self.table.find_mut(moved, |&i| i == from) {
                *slot = at;
            }
        }
        Some(self.entries.swap_remove(index))
    }

    pub(super) fn iter(&self) -> impl Iterator<Item = (&Digest, &V)> {
        self.entries.iter().map(|(k, v)| (k, v))
    }

    pub(super) fn keys(&self) -> impl Iterator<Item = &Digest> {
        self.entries.iter().map(|(k, _)| k)
    }

    pub(super) fn values(&self) -> impl Iterator<Item = &V> {
        self.entries.iter().map(|(_, v)| v)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn key(i: u32) -> Digest {
        crate::digest(&i).unwrap()
    }

    /// Inserts, replacements and removals by key and by position, against
    /// a std map; every position stays reachable by its key.
    #[test]
    fn agrees_with_a_std_map_through_inserts_and_swap_removals() {
        let mut map = DigestMap::default();
        let mut want = HashMap::new();
        let mut x = 7u64;
        for step in 0..20_000u32 {
            x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            let k = key((x >> 40) as u32 % 500);
            match x >> 62 {
                0 | 1 => assert_eq!(map.insert(k, step), want.insert(k, step)),
                2 => assert_eq!(map.swap_remove(&k), want.remove(&k)),
                _ if !map.is_empty() => {
                    let i = (x >> 20) as usize % map.len();
                    let (k, v) = map.swap_remove_index(i).unwrap();
                    assert_eq!(want.remove(&k), Some(v));
                }
                _ => {}
            }
            assert_eq!(map.len(), want.len());
        }
        for i in 0..map.len() {
            let (k, v) = map.get_index(i).unwrap();
            assert_eq!(map.get_index_of(k), Some(i));
            assert_eq!(want.get(k), Some(v));
        }
        assert!(map.get_index(map.len()).is_none());
        assert!(map.swap_remove_index(map.len()).is_none());
    }
}
