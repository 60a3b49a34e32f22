//! Structural mutations for the "random and mutated input never panics" tests (the stable-Rust
//! companions of the cargo-fuzz targets in `fuzz/`), and the replay of the committed regressions.
//!
//! Byte flips alone rarely get past a parser's first checks; inserted separators, deleted,
//! duplicated and truncated spans of a valid file reach deeper into the record loops.

use std::path::Path;

use proptest::prelude::*;
use proptest::sample::Index;

/// One structural edit of a file.
#[derive(Clone, Debug)]
pub enum Edit {
    Set(Index, u8),
    Insert(Index, Vec<u8>),
    Delete(Index, usize),
    /// Copies a slice elsewhere (duplicated records, lines, headers).
    Copy(Index, usize, Index),
    Truncate(Index),
}

/// Edits weighted 4 set, 2 insert, 2 delete, 2 copy, 1 truncate. Inserted runs are 1 to 7 bytes,
/// each one of `separators` (the format's own: CR, LF, `;`, `:` ...) as often as each other, or
/// any byte as often as one of them; deleted and copied spans are under `max_span` bytes.
pub fn edit(separators: &'static [u8], max_span: usize) -> impl Strategy<Value = Edit> {
    let byte = prop_oneof![
        separators.len().max(1) as u32 => prop::sample::select(separators),
        1 => any::<u8>(),
    ];
    prop_oneof![
        4 => (any::<Index>(), any::<u8>()).prop_map(|(i, b)| Edit::Set(i, b)),
        2 => (any::<Index>(), prop::collection::vec(byte, 1..8)).prop_map(|(i, b)| Edit::Insert(i, b)),
        2 => (any::<Index>(), 1..max_span).prop_map(|(i, n)| Edit::Delete(i, n)),
        2 => (any::<Index>(), 1..max_span, any::<Index>()).prop_map(|(i, n, j)| Edit::Copy(i, n, j)),
        1 => any::<Index>().prop_map(Edit::Truncate),
    ]
}

/// Applies `edits` to a copy of `base`, in order.
pub fn mutate(base: &[u8], edits: &[Edit]) -> Vec<u8> {
    let mut b = base.to_vec();
    for e in edits {
        let len = b.len();
        match e {
            Edit::Set(i, v) if len > 0 => b[i.index(len)] = *v,
            Edit::Insert(i, v) => {
                let at = i.index(len + 1);
                b.splice(at..at, v.iter().copied());
            }
            Edit::Delete(i, n) if len > 0 => {
                let at = i.index(len);
                let end = at.saturating_add(*n).min(len);
                b.drain(at..end);
            }
            Edit::Copy(i, n, j) if len > 0 => {
                let at = i.index(len);
                let piece = b[at..at.saturating_add(*n).min(len)].to_vec();
                let to = j.index(len + 1);
                b.splice(to..to, piece);
            }
            Edit::Truncate(i) => b.truncate(i.index(len + 1)),
            _ => {}
        }
    }
    b
}

/// Feeds every input committed under `fuzz/regressions/<target>/` to `f` (hidden files, such as
/// `.gitkeep`, excepted); returns how many there were (0 when nothing was ever found).
pub fn replay(target: &str, mut f: impl FnMut(&[u8])) -> usize {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/regressions")
        .join(target);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return 0;
    };
    let mut n = 0;
    for e in entries.flatten() {
        if e.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        f(&std::fs::read(e.path()).expect("regression input readable"));
        n += 1;
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::strategy::ValueTree;

    fn at(i: usize, len: usize) -> Index {
        // An `Index` maps to `i` for this length: proptest gives no constructor, so find one.
        let mut runner = proptest::test_runner::TestRunner::deterministic();
        loop {
            let idx = any::<Index>().new_tree(&mut runner).unwrap().current();
            if idx.index(len) == i {
                return idx;
            }
        }
    }

    #[test]
    fn each_edit_does_what_it_says() {
        let base = b"abcdef";
        assert_eq!(mutate(base, &[Edit::Set(at(1, 6), b'X')]), b"aXcdef");
        assert_eq!(
            mutate(base, &[Edit::Insert(at(6, 7), b"\r\n".to_vec())]),
            b"abcdef\r\n"
        );
        assert_eq!(mutate(base, &[Edit::Delete(at(2, 6), 3)]), b"abf");
        assert_eq!(mutate(base, &[Edit::Delete(at(4, 6), 300)]), b"abcd");
        assert_eq!(mutate(base, &[Edit::Copy(at(0, 6), 2, at(6, 7))]), b"abcdefab");
        assert_eq!(mutate(base, &[Edit::Truncate(at(3, 7))]), b"abc");
        // Edits that need a byte do nothing on an empty file.
        assert_eq!(
            mutate(b"", &[Edit::Set(at(0, 1), 1), Edit::Delete(at(0, 1), 1)]),
            b""
        );
    }

    #[test]
    fn replay_of_a_target_without_regressions_is_zero() {
        assert_eq!(replay("no-such-target", |_| panic!("nothing to replay")), 0);
    }
}
