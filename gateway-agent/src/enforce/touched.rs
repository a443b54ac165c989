//! Short inline lists for the request path: the usage a request adds per metric
//! ([`Touched`]) and, in limits.rs, the limit checks it must pass.

/// A short list kept inline: most requests touch a handful of metrics and limits, and the
/// request path should not allocate for them. Spills to the heap past `N`.
pub struct InlineVec<T: Copy, const N: usize> {
    len: usize,
    items: [T; N],
    spilled: Option<Vec<T>>,
}

impl<T: Copy, const N: usize> InlineVec<T, N> {
    /// `fill` only initialises unused slots.
    pub fn new(fill: T) -> Self {
        InlineVec { len: 0, items: [fill; N], spilled: None }
    }

    pub fn push(&mut self, item: T) {
        if let Some(heap) = &mut self.spilled {
            heap.push(item);
        } else if let Some(slot) = self.items.get_mut(self.len) {
            *slot = item;
            self.len += 1;
        } else {
            let mut heap = Vec::with_capacity(N * 2);
            heap.extend_from_slice(&self.items);
            heap.push(item);
            self.spilled = Some(heap);
        }
    }

    pub fn as_slice(&self) -> &[T] {
        match &self.spilled {
            Some(heap) => heap,
            None => &self.items[..self.len],
        }
    }

    pub fn as_mut_slice(&mut self) -> &mut [T] {
        match &mut self.spilled {
            Some(heap) => heap,
            None => &mut self.items[..self.len],
        }
    }

    pub fn is_empty(&self) -> bool {
        self.as_slice().is_empty()
    }
}

/// Usage a request adds: (metric index within its API, amount), each metric once, parents
/// included.
pub type Touched = InlineVec<(u32, u64), 8>;

impl Touched {
    pub fn empty() -> Touched {
        InlineVec::new((0, 0))
    }

    /// Adds `amount` to `metric`.
    pub fn add(&mut self, metric: u32, amount: u64) {
        match self.as_mut_slice().iter_mut().find(|(m, _)| *m == metric) {
            Some((_, total)) => *total = total.saturating_add(amount),
            None => self.push((metric, amount)),
        }
    }

    pub fn amount(&self, metric: u32) -> Option<u64> {
        self.as_slice().iter().find(|(m, _)| *m == metric).map(|&(_, amount)| amount)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inline_vec_spills() {
        let mut v: InlineVec<u32, 2> = InlineVec::new(0);
        assert!(v.is_empty());
        v.push(1);
        v.push(2);
        assert_eq!(v.as_slice(), [1, 2]);
        v.push(3);
        assert_eq!(v.as_slice(), [1, 2, 3]);
    }

    #[test]
    fn touched_sums_per_metric() {
        let mut t = Touched::empty();
        t.add(3, 1);
        t.add(4, 2);
        t.add(3, 5);
        assert_eq!(t.amount(3), Some(6));
        assert_eq!(t.amount(4), Some(2));
        assert_eq!(t.amount(5), None);
    }
}
