//! The gather: merge per-shard ranked lists into the global page. Order: score descending,
//! then external id ascending — or, for a sorted search, the leaves' sort keys (the values'
//! order-preserving encoding, id last) — so the page does not depend on shard layout or
//! arrival order.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

/// A ranked hit from one shard.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ShardHit {
    /// External id.
    pub id: String,
    /// Score.
    pub score: f32,
    /// Shard it came from.
    pub shard: usize,
    /// Sorted searches: the leaf's sort key (empty for ranked searches).
    pub sort_key: Vec<u8>,
    /// Sorted searches: the sort values as a JSON array.
    pub sort_values: Option<String>,
}

/// The global order: by sort key when sorted, else higher score first; then smaller id.
pub fn rank_order(a: &ShardHit, b: &ShardHit) -> Ordering {
    a.sort_key
        .cmp(&b.sort_key)
        .then_with(|| b.score.total_cmp(&a.score))
        .then_with(|| a.id.cmp(&b.id))
}

/// Heap entry: the head of one shard's list.
struct Head<'a> {
    hit: &'a ShardHit,
    list: usize,
    pos: usize,
}

impl PartialEq for Head<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Head<'_> {}
impl PartialOrd for Head<'_> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Head<'_> {
    /// Max-heap: the best hit (by [`rank_order`]) is the greatest.
    fn cmp(&self, other: &Self) -> Ordering {
        rank_order(other.hit, self.hit).then_with(|| other.list.cmp(&self.list))
    }
}

/// K-way merge of lists each sorted by [`rank_order`]; returns hits `from..from + size` of the
/// merged order. Works in O((from + size) · log(lists)).
pub fn merge_top(lists: &[Vec<ShardHit>], from: usize, size: usize) -> Vec<ShardHit> {
    let mut heap: BinaryHeap<Head> = lists
        .iter()
        .enumerate()
        .filter_map(|(list, hits)| hits.first().map(|hit| Head { hit, list, pos: 0 }))
        .collect();
    let mut out = Vec::with_capacity(size);
    let mut rank = 0;
    while let Some(Head { hit, list, pos }) = heap.pop() {
        if rank >= from + size {
            break;
        }
        if rank >= from {
            out.push(hit.clone());
        }
        rank += 1;
        if let Some(next) = lists[list].get(pos + 1) {
            heap.push(Head {
                hit: next,
                list,
                pos: pos + 1,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hit(id: &str, score: f32, shard: usize) -> ShardHit {
        ShardHit {
            id: id.to_string(),
            score,
            shard,
            ..Default::default()
        }
    }

    #[test]
    fn merges_with_ties_by_id() {
        let a = vec![hit("b", 3.0, 0), hit("d", 1.0, 0)];
        let b = vec![hit("a", 3.0, 1), hit("c", 2.0, 1), hit("e", 1.0, 1)];
        let all = merge_top(&[a.clone(), b.clone()], 0, 10);
        let ids: Vec<&str> = all.iter().map(|h| h.id.as_str()).collect();
        assert_eq!(ids, ["a", "b", "c", "d", "e"]);
        let page = merge_top(&[b, a], 1, 2);
        let ids: Vec<&str> = page.iter().map(|h| h.id.as_str()).collect();
        assert_eq!(ids, ["b", "c"]);
    }

    #[test]
    fn equals_a_full_sort() {
        let mut lists = vec![Vec::new(); 4];
        let mut all = Vec::new();
        for i in 0..400u32 {
            let h = hit(
                &format!("id{:03}", (i * 7919) % 400),
                (i % 13) as f32,
                (i % 4) as usize,
            );
            lists[h.shard].push(h.clone());
            all.push(h);
        }
        for l in &mut lists {
            l.sort_by(rank_order);
        }
        all.sort_by(rank_order);
        assert_eq!(merge_top(&lists, 17, 50), all[17..67].to_vec());
        assert!(merge_top(&lists, 500, 10).is_empty());
        assert!(merge_top(&[], 0, 10).is_empty());
    }
}
