//! Paging for the admin API's lists: the query parameters, the one depth policy of
//! offset pages, and the page answered with the link to the next one.
//!
//! An offset costs Postgres a walk past every skipped row (page 10,000 of 50 took
//! seconds at 1M rows), so offset pages stop where the list counts stop
//! (`COUNT_LIMIT`, 10,000 rows), as GitHub's and Elasticsearch's do. Deeper rows are
//! reached by key: `after_id`, the last id of a page, which every list takes and
//! which `next` uses, so following `next` walks every row at the cost of the first page.

use actix_web::HttpRequest;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use tollgate_core::Error;
use tollgate_core::db::COUNT_LIMIT;

use super::error::{ApiError, ApiResult};

/// The deepest row an offset page may start at: rows past it are reached with `after_id`.
pub const DEEPEST_OFFSET_ROW: i64 = COUNT_LIMIT;

/// Which page of a list to return.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// 1-based page number. Offset pages reach the first 10,000 rows: a page that starts
    /// past them (`(page - 1) × per_page ≥ 10000`) is refused with 400 `page_too_deep`;
    /// follow `next` (`after_id`) to go further.
    #[param(minimum = 1, maximum = 10000)]
    pub page: Option<i64>,
    /// Items per page, 1 to 100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    pub per_page: Option<i64>,
}

impl PageQuery {
    /// `(limit, offset)`, a 422 naming the parameter out of range, or a 400
    /// `page_too_deep` for an offset page past [`DEEPEST_OFFSET_ROW`]. The limit is one more
    /// than a page: the extra row, which [`Page::new`] drops, says whether another page follows
    /// (a page by key has no count to tell).
    pub fn window(&self) -> ApiResult<(i64, i64)> {
        let page = self.page.unwrap_or(1);
        let per_page = self.per_page.unwrap_or(20);
        if page < 1 {
            return Err(Error::invalid("page", "use a number from 1 to 10,000").into());
        }
        if !(1..=100).contains(&per_page) {
            return Err(Error::invalid("per_page", "use 1 to 100").into());
        }
        let offset = (page - 1).saturating_mul(per_page);
        if offset >= DEEPEST_OFFSET_ROW {
            return Err(ApiError::PageTooDeep);
        }
        Ok((per_page + 1, offset))
    }
}

/// An item of a list: the key that `after_id` takes to continue after it.
pub trait Keyed {
    fn key(&self) -> String;
}

/// A page of results.
#[derive(Debug, Serialize, ToSchema)]
pub struct Page<T: ToSchema> {
    pub items: Vec<T>,
    pub page: i64,
    pub per_page: i64,
    /// How many items match, counted up to 10,000.
    pub total: i64,
    /// False when more than `total` items match: lists stop counting at 10,000,
    /// because counting millions of rows for one page would cost seconds.
    pub total_exact: bool,
    /// The path and query of the next page: the same query with `after_id` set to this
    /// page's last item (keyset paging, as fast at any depth). Null when this page is the last.
    /// Following it walks every item, past the 10,000 rows offset pages reach.
    pub next: Option<String>,
}

impl<T: ToSchema + Keyed> Page<T> {
    /// `items` as fetched with [`PageQuery::window`]'s limit, up to one more than a page;
    /// `total` as the core counted it: up to one past the count limit.
    pub fn new(mut items: Vec<T>, req: &HttpRequest, query: &PageQuery, total: i64) -> Page<T> {
        let page = query.page.unwrap_or(1);
        let per_page = query.per_page.unwrap_or(20);
        let more = items.len() > usize::try_from(per_page).unwrap_or(usize::MAX);
        items.truncate(usize::try_from(per_page).unwrap_or(usize::MAX));
        let next = match items.last() {
            Some(last) if more => Some(next_link(req, &last.key())),
            _ => None,
        };
        Page { items, page, per_page, total: total.min(COUNT_LIMIT), total_exact: total <= COUNT_LIMIT, next }
    }
}

/// The request's path and query with `page` dropped and `after_id` set to `key`.
fn next_link(req: &HttpRequest, key: &str) -> String {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(req.query_string()).unwrap_or_default();
    let mut kept: Vec<(String, String)> =
        pairs.into_iter().filter(|(name, _)| name != "page" && name != "after_id").collect();
    kept.push(("after_id".to_owned(), key.to_owned()));
    let query = serde_urlencoded::to_string(&kept).unwrap_or_default();
    format!("{}?{query}", req.path())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use utoipa::OpenApi as _;

    /// Every list documents the same depth and takes `after_id`, so `next` works on each.
    #[test]
    fn every_paged_list_documents_the_depth_and_takes_after_id() {
        let doc = serde_json::to_value(super::super::ApiDoc::openapi()).unwrap();
        let mut lists = 0;
        for (path, item) in doc["paths"].as_object().unwrap() {
            let params = item["get"]["parameters"].as_array().cloned().unwrap_or_default();
            let query = |name: &str| params.iter().find(|p| p["name"] == name && p["in"] == "query").cloned();
            let Some(page) = query("page") else { continue };
            lists += 1;
            assert!(query("after_id").is_some(), "{path} pages by offset without after_id");
            assert_eq!(page["schema"]["maximum"], json!(DEEPEST_OFFSET_ROW), "{path}: {page}");
            let described = page["description"].as_str().unwrap_or_default();
            assert!(described.contains("page_too_deep"), "{path}: {described}");
        }
        assert!(lists >= 7, "{lists} paged lists");
    }
}
