//! How rows are put in buckets that both sides agree on (ranges of an
//! integer key, or hashes of any key), and how one side reads a level's
//! bucket sums or a bucket's rows.

use std::collections::BTreeMap;

use postgres::Client;
use serde_json::Value;

use super::{FANOUT, FETCH_LIMIT};

/// How rows are put in buckets. Both sides must agree on every row's
/// bucket whatever their collations, so a bucket is either a range of a
/// single integer key (integers order alike everywhere) or a hash of the
/// key's text in the C collation (any key).
#[derive(Clone)]
pub(super) enum Split {
    /// Hash buckets of the key: `first` at the first split, [`FANOUT`]
    /// below, one seed per level; finding a bucket's rows takes a scan.
    Hash { key: HashedKey, first: i64 },
    /// Ranges of the integer column `column` (quoted), from `lo`: at level
    /// L (1-based) a bucket is `[start, start + widths[L - 1])`. Widths are
    /// powers of two, each [`FANOUT`] times the next and the last 1, so
    /// buckets nest and the deepest hold one key. A bucket's rows are
    /// found through the key's index.
    Range { column: String, lo: i64, widths: Vec<i64> },
}

/// How a key is hashed into buckets, the same way on both sides.
#[derive(Clone)]
pub(super) enum HashedKey {
    /// The key as text in the C collation (SQL): any key.
    Text(String),
    /// A uuid column on both sides (quoted): by its own hash function,
    /// three times cheaper than its text.
    Uuid(String),
}

impl HashedKey {
    fn hash(&self, seed: u32) -> String {
        match self {
            HashedKey::Text(text) => format!("hashtextextended({text}, {seed})"),
            HashedKey::Uuid(column) => format!("uuid_hash_extended(t.{column}, {seed})"),
        }
    }
}

impl Split {
    /// Range buckets for a key of one integer column spanning `lo..=hi`
    /// on the two sides together, about `first` buckets at the first
    /// split; `None` when the span does not fit in 64-bit arithmetic.
    pub(super) fn range(column: String, lo: i64, hi: i64, first: i64) -> Option<Split> {
        let span = hi.checked_sub(lo)?.checked_add(1)?;
        let wanted = u64::try_from((span - 1) / first + 1).ok()?;
        let mut width = i64::try_from(wanted.checked_next_power_of_two()?).ok()?;
        // The last bucket's end must be representable too.
        lo.checked_add((span / width + 1).checked_mul(width)?)?;
        let mut widths = vec![width];
        while width > 1 {
            width = (width / FANOUT).max(1);
            widths.push(width);
        }
        Some(Split::Range { column, lo, widths })
    }

    /// A differing bucket with at most this many rows on each side has
    /// its rows read rather than split again. Reading a hash bucket's
    /// rows takes a scan, so hash buckets are read bigger.
    pub(super) fn fetch_limit(&self) -> i64 {
        match self {
            Split::Hash { .. } => 4 * FETCH_LIMIT,
            Split::Range { .. } => FETCH_LIMIT,
        }
    }

    /// How many levels the split goes down at most.
    pub(super) fn levels(&self) -> u32 {
        match self {
            Split::Hash { .. } => LEVELS,
            Split::Range { widths, .. } => widths.len() as u32,
        }
    }

    /// A row's bucket at `level` as one number (for ranges, its start).
    fn code(&self, level: u32) -> String {
        match self {
            Split::Hash { key, first } => path_code(key, level, *first),
            Split::Range { column, lo, widths } => {
                let w = widths[level as usize - 1];
                format!("({lo}::int8 + ((t.{column}::int8 - {lo}::int8) / {w}) * {w})")
            }
        }
    }

    /// What follows `from only <relation> t` to keep the rows of the
    /// buckets `$1` at `level`.
    fn within(&self, level: u32) -> String {
        match self {
            Split::Hash { key, first } => {
                format!("where ({}) = any($1::bigint[])", path_code(key, level, *first))
            }
            Split::Range { column, widths, .. } => format!(
                "join unnest($1::bigint[]) b(start) on t.{column} >= b.start and t.{column} < b.start + {}",
                widths[level as usize - 1]
            ),
        }
    }
}

/// The rows of some buckets as one side has them: key text → (key JSON,
/// row hash, row JSON).
pub(super) type BucketRows = BTreeMap<String, (Value, i64, Value)>;

/// One side's view of a table.
pub(super) struct Side<'a> {
    pub(super) client: &'a mut Client,
    /// This side's row hash (its own columns' types).
    pub(super) row_hash: String,
    /// This side's row as JSON, without the columns the other side lacks.
    pub(super) row_json: String,
    pub(super) shape: &'a Shape,
}

/// What both sides query alike.
pub(super) struct Shape {
    /// `schema.table`, quoted.
    pub(super) relation: String,
    /// The key as one text value, the same on both sides.
    pub(super) key_text: String,
    /// The key as JSON, for showing it.
    pub(super) key_json: String,
    pub(super) split: Split,
}

/// Runs `f` and `g` at once (one on each side's server) and gives both results.
pub(super) fn both<A: Send, B: Send>(
    f: impl FnOnce() -> A + Send,
    g: impl FnOnce() -> B,
) -> (A, B) {
    std::thread::scope(|scope| {
        let first = scope.spawn(f);
        let second = g();
        (first.join().unwrap_or_else(|e| std::panic::resume_unwind(e)), second)
    })
}

/// The deepest hash split: 256^6 buckets, far more than rows in any table.
const LEVELS: u32 = 6;

/// A row's hash bucket path down to `level` as one number: the bucket of
/// each split (seeds 1..=level; `first` buckets at the first, [`FANOUT`]
/// below) as digits, the first the most significant.
fn path_code(key: &HashedKey, level: u32, first: i64) -> String {
    (1..=level)
        .map(|seed| {
            let n = if seed == 1 { first } else { FANOUT };
            let weight = FANOUT.pow(level - seed);
            let hash = key.hash(seed);
            format!("((mod({hash}, {n}) + {n}) % {n}) * {weight}")
        })
        .collect::<Vec<_>>()
        .join(" + ")
}

impl Side<'_> {
    /// Row count and hash sum of every bucket at `level` under the
    /// buckets `under` of the level above (all rows at level 1): one scan
    /// (for ranges, index scans of those buckets).
    pub(super) fn buckets(
        &mut self,
        level: u32,
        under: &[i64],
    ) -> Result<BTreeMap<i64, (i64, String)>, postgres::Error> {
        let filter = if level == 1 { String::new() } else { self.shape.split.within(level - 1) };
        let sql = format!(
            "select {code}, count(*), coalesce(sum({h}), 0)::text
               from only {r} t {filter} group by 1",
            code = self.shape.split.code(level),
            h = self.row_hash,
            r = self.shape.relation
        );
        let rows = if level == 1 {
            self.client.query(&sql, &[])?
        } else {
            self.client.query(&sql, &[&under])?
        };
        Ok(rows.iter().map(|r| (r.get(0), (r.get(1), r.get(2)))).collect())
    }

    /// The rows of the buckets `codes` at `level`.
    pub(super) fn rows(
        &mut self,
        level: u32,
        codes: &[i64],
    ) -> Result<BucketRows, postgres::Error> {
        let sql = format!(
            "select {k}, {kj}, {h}, {j} from only {r} t {within}",
            k = self.shape.key_text,
            kj = self.shape.key_json,
            h = self.row_hash,
            j = self.row_json,
            r = self.shape.relation,
            within = self.shape.split.within(level)
        );
        Ok(self
            .client
            .query(&sql, &[&codes])?
            .iter()
            .map(|r| (r.get::<_, String>(0), (r.get(1), r.get(2), r.get(3))))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn widths(split: Option<Split>) -> Option<(i64, Vec<i64>)> {
        split.map(|s| match s {
            Split::Range { lo, widths, .. } => (lo, widths),
            Split::Hash { .. } => unreachable!(),
        })
    }

    #[test]
    fn range_buckets_nest_down_to_one_key() {
        // 10M dense keys in ~2442 buckets of 4096, then 16, then 1.
        assert_eq!(
            widths(Split::range("id".into(), 1, 10_000_000, 4096)),
            Some((1, vec![4096, 16, 1]))
        );
        let (_, w) = widths(Split::range("id".into(), -1_000_000_000, 2_000_000_000, 8)).unwrap();
        assert_eq!(w[0], 1 << 29);
        assert!(w.windows(2).all(|p| p[1] == (p[0] / FANOUT).max(1) && p[0] % p[1] == 0), "{w:?}");
        assert_eq!(w.last(), Some(&1));
        assert_eq!(widths(Split::range("id".into(), 5, 5, 1)), Some((5, vec![1])));
    }

    #[test]
    fn keys_spanning_more_than_64_bits_are_not_split_in_ranges() {
        assert!(Split::range("id".into(), i64::MIN, i64::MAX, 4).is_none());
        assert!(Split::range("id".into(), -10, i64::MAX, 1 << 20).is_none());
        assert!(Split::range("id".into(), 0, i64::MAX / 2, 1 << 20).is_some());
    }
}
