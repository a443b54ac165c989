//! Searching names by any part of them (`ILIKE '%…%'`), served by the trigram indexes.
//!
//! A trigram index reads one posting list per trigram of the pattern, and the list of a
//! trigram that most names share is a list of nearly every row: at 1M applications named
//! `App n`, the `app` trigrams cost 6 ms of a 6.4 ms search for `App 12345`. So the index is
//! asked only for the query's words that few names contain, judged against the column's
//! statistics sample (`pg_stats`, kept by ANALYZE), and each candidate is then checked
//! against the whole query. A query that many names contain (`app`) is the opposite case:
//! the trigram index would list most rows, while walking the list's own index in order finds
//! a page of matches after a few hundred rows, so such a search is [`NameSearch::common`].

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, Instant};

use sqlx::PgPool;

use crate::db::{contains_pattern, database_key, like_escape};

/// A column whose names admins search, with a trigram index on it.
#[derive(Debug, Clone, Copy)]
pub(crate) enum NameColumn {
    /// `applications.name`
    Applications,
    /// `accounts.name`
    Accounts,
}

impl NameColumn {
    fn table(self) -> &'static str {
        match self {
            NameColumn::Applications => "applications",
            NameColumn::Accounts => "accounts",
        }
    }
}

/// A word in at least this share of the sample is left to the check of the whole query, and a
/// whole query in at least this share is common.
const COMMON_SHARE: f64 = 0.1;

/// Below this many sampled names the shares say nothing, and the whole query goes to the index.
const MIN_SAMPLE: usize = 20;

/// How long a column's sample is reused; ANALYZE refreshes the statistics less often.
const SAMPLE_TTL: Duration = Duration::from_secs(60);

/// At most this many kept samples (one per database and column); more clears them all.
const SAMPLE_KEYS: usize = 256;

/// Lower-cased names, read from the statistics when they were last asked for.
type Sample = Arc<Vec<String>>;

static SAMPLES: LazyLock<Mutex<HashMap<String, (Instant, Sample)>>> = LazyLock::new(Default::default);

/// What a search sends to Postgres for one column: `name ILIKE index_pattern` (served by the
/// trigram index) `AND lower(name) LIKE lower(pattern)` (the whole query, on the candidates
/// only: the index is on `name`, not `lower(name)`, so the planner cannot use it there).
pub(crate) struct NameSearch {
    /// The whole query: names that contain it.
    pub(crate) pattern: String,
    /// The query's uncommon words in order (`%w1%w2%`), implied by `pattern`.
    pub(crate) index_pattern: String,
    /// At least [`COMMON_SHARE`] of the sample contains the whole query: the list is better
    /// walked in its own order with the query as a filter than read from the trigram index.
    pub(crate) common: bool,
}

/// The search for `query` in `column`. A failed read of the statistics is an error like any
/// other statement's.
pub(crate) async fn name_search(pool: &PgPool, column: NameColumn, query: &str) -> Result<NameSearch, sqlx::Error> {
    let pattern = contains_pattern(query);
    let sample = sample(pool, column).await?;
    let index_pattern = uncommon_words_pattern(query, &sample).unwrap_or_else(|| pattern.clone());
    let common = sample.len() >= MIN_SAMPLE && is_common(&query.to_lowercase(), &sample);
    Ok(NameSearch { pattern, index_pattern, common })
}

/// Whether at least [`COMMON_SHARE`] of `sample` (lower-cased) contains `text` (lower-cased).
fn is_common(text: &str, sample: &[String]) -> bool {
    let containing = sample.iter().filter(|name| name.contains(text)).count();
    containing as f64 >= COMMON_SHARE * sample.len() as f64
}

/// `%w1%w2%` of the words of `query` that fewer than [`COMMON_SHARE`] of `sample` contain;
/// None when the whole query should go to the index: a sample too small to judge, no common
/// word, or no uncommon word of three characters or more (a pattern without a trigram makes
/// the index read every entry).
fn uncommon_words_pattern(query: &str, sample: &[String]) -> Option<String> {
    if sample.len() < MIN_SAMPLE {
        return None;
    }
    let words: Vec<&str> = query.split_whitespace().collect();
    let uncommon: Vec<&str> = words.iter().copied().filter(|word| !is_common(&word.to_lowercase(), sample)).collect();
    if uncommon.len() == words.len() || !uncommon.iter().any(|word| word.chars().count() >= 3) {
        return None;
    }
    let escaped: Vec<String> = uncommon.iter().map(|word| like_escape(word)).collect();
    Some(format!("%{}%", escaped.join("%")))
}

/// The column's most common values and histogram bounds (about a hundred names ANALYZE
/// sampled), lower-cased; empty before the table is first analysed.
async fn sample(pool: &PgPool, column: NameColumn) -> Result<Sample, sqlx::Error> {
    let key = format!("{}\n{}", database_key(pool), column.table());
    {
        let kept = SAMPLES.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some((at, sample)) = kept.get(&key)
            && at.elapsed() < SAMPLE_TTL
        {
            return Ok(Arc::clone(sample));
        }
    }
    let values = sqlx::query_scalar!(
        r#"SELECT coalesce(most_common_vals::text::text[], '{}') || coalesce(histogram_bounds::text::text[], '{}') AS "values!"
           FROM pg_stats
           WHERE schemaname = current_schema() AND tablename::text = $1 AND attname = 'name' AND NOT inherited"#,
        column.table()
    )
    .fetch_optional(pool)
    .await?
    .unwrap_or_default();
    let sample: Sample = Arc::new(values.iter().map(|name| name.to_lowercase()).collect());
    let mut kept = SAMPLES.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if kept.len() >= SAMPLE_KEYS {
        kept.clear();
    }
    kept.insert(key, (Instant::now(), Arc::clone(&sample)));
    Ok(sample)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(names: impl Fn(usize) -> String) -> Vec<String> {
        (0..100).map(|n| names(n).to_lowercase()).collect()
    }

    #[test]
    fn a_word_most_names_share_is_left_to_the_check_of_the_whole_query() {
        let apps = sample(|n| format!("App {}", n * 9_973));
        assert_eq!(uncommon_words_pattern("App 12345", &apps).as_deref(), Some("%12345%"));
        assert_eq!(uncommon_words_pattern("app 1_2% x\\y", &apps).as_deref(), Some("%1\\_2\\%%x\\\\y%"));
        let accounts = sample(|n| format!("Developer {n}"));
        assert_eq!(uncommon_words_pattern("Developer 12345", &accounts).as_deref(), Some("%12345%"));
    }

    #[test]
    fn a_query_in_a_tenth_of_the_names_is_common() {
        let names = sample(|n| if n % 10 == 0 { format!("Billing {n}") } else { format!("Maps {n}") });
        assert!(is_common("billing", &names));
        assert!(is_common("maps", &names));
        assert!(!is_common("billing 1", &names));
        assert!(!is_common("search", &names));
    }

    #[test]
    fn the_whole_query_goes_to_the_index_when_no_word_can_be_left_out() {
        let varied = sample(|n| format!("Service {n} of team {}", n % 7));
        // No common word.
        assert_eq!(uncommon_words_pattern("Acme Billing", &varied), None);
        // Only common words.
        assert_eq!(uncommon_words_pattern("Service of", &varied), None);
        // What is left has no trigram.
        assert_eq!(uncommon_words_pattern("Service 12", &varied), None);
        // Too few names to judge.
        assert_eq!(uncommon_words_pattern("Service 123", &varied[..10]), None);
    }
}
