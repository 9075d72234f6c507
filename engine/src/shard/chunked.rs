//! [`ChunkedVec`]: a vector that grows a fixed-size chunk at a time, so growth never moves an
//! element (ADR 0059: a `Vec` of millions of buyer slots doubling on the shard's thread is a
//! copy of the whole vector into fresh pages — hundreds of milliseconds under an allocator
//! without `mremap`).

use std::ops::Index;

/// log2 of the elements per chunk (the index splits by a shift and a mask).
const CHUNK_SHIFT: u32 = 10;
/// Elements per chunk.
const CHUNK_LEN: usize = 1 << CHUNK_SHIFT;
/// The index bits of a position within its chunk.
const CHUNK_MASK: usize = CHUNK_LEN - 1;

/// A growable sequence indexed like a `Vec`, stored in chunks of [`CHUNK_LEN`] elements that
/// are never reallocated: pushing allocates a new chunk when the last is full; only the
/// chunk directory (one pointer per chunk) ever moves.
///
/// A chunk is a fixed-size array (`Box<[T; CHUNK_LEN]>`), filled with `T::default()` when
/// allocated: indexing within a chunk is a mask that cannot go out of bounds, so an access
/// checks only `i < len` and the directory's length, not a per-chunk length too (ADR 0060:
/// the `Vec` chunks cost ≈ 25 instructions per reserve+confirm pair over the flat `Vec`).
#[derive(Debug)]
pub(super) struct ChunkedVec<T> {
    /// The chunks; elements at `len` and beyond are `T::default()` placeholders.
    chunks: Vec<Box<[T; CHUNK_LEN]>>,
    /// Elements in all.
    len: usize,
}

impl<T> Default for ChunkedVec<T> {
    fn default() -> Self {
        ChunkedVec {
            chunks: Vec::new(),
            len: 0,
        }
    }
}

impl<T: Default> ChunkedVec<T> {
    /// Appends `value` at index [`ChunkedVec::len`].
    pub(super) fn push(&mut self, value: T) {
        let at = self.len & CHUNK_MASK;
        if at == 0 {
            self.chunks.push(new_chunk());
        }
        let Some(last) = self.chunks.last_mut() else {
            unreachable!("a chunk was just added for an empty vector");
        };
        last[at] = value;
        self.len += 1;
    }
}

/// A chunk of `T::default()`s, built on the heap (no `[T; CHUNK_LEN]` on the stack).
#[cold]
fn new_chunk<T: Default>() -> Box<[T; CHUNK_LEN]> {
    let all: Box<[T]> = (0..CHUNK_LEN).map(|_| T::default()).collect();
    match all.try_into() {
        Ok(chunk) => chunk,
        Err(_) => unreachable!("a chunk built with CHUNK_LEN elements"),
    }
}

impl<T> ChunkedVec<T> {
    /// Elements in all.
    pub(super) fn len(&self) -> usize {
        self.len
    }

    /// The element at `i`, if `i < len`.
    #[inline(always)]
    pub(super) fn get(&self, i: usize) -> Option<&T> {
        if i >= self.len {
            return None;
        }
        Some(&self.chunks.get(i >> CHUNK_SHIFT)?[i & CHUNK_MASK])
    }

    /// The element at `i`, mutably, if `i < len`.
    #[inline(always)]
    pub(super) fn get_mut(&mut self, i: usize) -> Option<&mut T> {
        if i >= self.len {
            return None;
        }
        Some(&mut self.chunks.get_mut(i >> CHUNK_SHIFT)?[i & CHUNK_MASK])
    }

    /// The elements in index order.
    pub(super) fn iter(&self) -> impl Iterator<Item = &T> {
        self.chunks.iter().flat_map(|c| c.iter()).take(self.len)
    }
}

impl<T> Index<usize> for ChunkedVec<T> {
    type Output = T;

    fn index(&self, i: usize) -> &T {
        match self.get(i) {
            Some(v) => v,
            None => panic!(
                "index {i} out of range for a chunked vector of {}",
                self.len
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indexes_like_a_vec_across_chunk_boundaries() {
        let mut c = ChunkedVec::default();
        let mut v = Vec::new();
        for i in 0..(3 * CHUNK_LEN + 5) {
            c.push(i * 7);
            v.push(i * 7);
            assert_eq!(c.len(), v.len());
        }
        for (i, want) in v.iter().enumerate() {
            assert_eq!(c.get(i), Some(want));
            assert_eq!(c[i], *want);
        }
        assert_eq!(c.get(v.len()), None);
        assert!(c.iter().eq(v.iter()));
        if let Some(x) = c.get_mut(CHUNK_LEN) {
            *x = 1;
        }
        assert_eq!(c[CHUNK_LEN], 1);
        assert_eq!(c.get_mut(v.len()), None);
    }

    #[test]
    fn growth_never_moves_an_element() {
        let mut c = ChunkedVec::default();
        c.push(0u64);
        let first: *const u64 = &c[0];
        for i in 1..(4 * CHUNK_LEN as u64) {
            c.push(i);
        }
        assert!(std::ptr::eq(first, &c[0]), "the first element moved");
    }
}
