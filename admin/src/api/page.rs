//! Paging for the admin API's lists: the query parameters and the page answered.

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use tollgate_core::Error;
use tollgate_core::db::COUNT_LIMIT;

use super::error::ApiResult;

/// Which page of a list to return.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// 1-based page number.
    #[param(minimum = 1, maximum = 1000000)]
    pub page: Option<i64>,
    /// Items per page, 1 to 100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    pub per_page: Option<i64>,
}

impl PageQuery {
    /// `(limit, offset)`, or a 422 naming the parameter out of range.
    pub fn window(&self) -> ApiResult<(i64, i64)> {
        let page = self.page.unwrap_or(1);
        let per_page = self.per_page.unwrap_or(20);
        if !(1..=1_000_000).contains(&page) {
            return Err(Error::invalid("page", "use a number from 1 to 1,000,000").into());
        }
        if !(1..=100).contains(&per_page) {
            return Err(Error::invalid("per_page", "use 1 to 100").into());
        }
        Ok((per_page, (page - 1) * per_page))
    }
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
}

impl<T: ToSchema> Page<T> {
    /// `total` as the core counted it: up to one past the count limit.
    pub fn new(items: Vec<T>, query: &PageQuery, total: i64) -> Page<T> {
        Page {
            items,
            page: query.page.unwrap_or(1),
            per_page: query.per_page.unwrap_or(20),
            total: total.min(COUNT_LIMIT),
            total_exact: total <= COUNT_LIMIT,
        }
    }
}
