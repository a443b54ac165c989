//! What the admin API reads and writes besides its own types: JSON bodies
//! and query strings, parsed only after authentication so an
//! unauthenticated caller always gets 401 first, and timestamps as RFC 3339.

use super::error::{ApiError, ApiResult};

/// Parses a JSON body after authentication, rejecting unknown fields where
/// the type says so, with the serde message (which names the field).
pub fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> ApiResult<T> {
    let mut value: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| ApiError::BadRequest(format!("the JSON body is not valid: {e}")))?;
    integral_floats_to_integers(&mut value);
    if let Some(path) = nul_in(&value, String::new()) {
        return Err(tollgate_core::Error::invalid(path, "text cannot contain NUL characters").into());
    }
    serde_path_to_error::deserialize(value).map_err(|e| unparsed(e, "the JSON body", "the JSON body's field"))
}

/// A body or query string that does not parse, named at the field where serde stopped
/// (`limits[0].max`, as the body's own checks name fields); a missing field is named too
/// (serde stops at the object that lacks it: `owner_email`, `limits[0].metric`).
fn unparsed<E: std::fmt::Display>(e: serde_path_to_error::Error<E>, whole: &str, part: &str) -> ApiError {
    let path = e.path().to_string();
    let at = (path != "." && path != "?").then_some(path);
    let inner = e.inner().to_string();
    let missing = inner.strip_prefix("missing field `").and_then(|rest| rest.strip_suffix('`'));
    let field = match (at, missing) {
        (Some(at), Some(name)) => Some(format!("{at}.{name}")),
        (None, Some(name)) => Some(name.to_owned()),
        (at, None) => at,
    };
    let message = match &field {
        Some(field) if missing.is_some() => format!("{whole} is not valid: {part} `{field}` is missing"),
        Some(field) => format!("{part} `{field}` is not valid: {inner}"),
        None => format!("{whole} is not valid: {inner}"),
    };
    ApiError::Unparsed { field, message }
}

/// [`parse_json`] for a body documented as an object: serde would also read a struct
/// from a JSON array (`[null, null]`), which the document does not allow.
pub fn parse_json_object<T: serde::de::DeserializeOwned>(body: &[u8]) -> ApiResult<T> {
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| ApiError::BadRequest(format!("the JSON body is not valid: {e}")))?;
    if !value.is_object() {
        return Err(ApiError::BadRequest("the JSON body must be an object".into()));
    }
    parse_json(body)
}

/// A decimal field's text as a number: 422 naming the field when it is not one.
pub fn parse_decimal(field: &'static str, raw: &str) -> ApiResult<rust_decimal::Decimal> {
    Ok(decimal_in(field, raw)?)
}

/// [`parse_decimal`] as a core check, for bodies that collect every problem.
pub fn decimal_in(
    field: impl Into<std::borrow::Cow<'static, str>>,
    raw: &str,
) -> tollgate_core::Result<rust_decimal::Decimal> {
    raw.trim().parse::<rust_decimal::Decimal>().map_err(|_| {
        tollgate_core::Error::invalid(field, "write a decimal number of at most 28 digits, e.g. \"12.50\"")
    })
}

/// A decimal field's text, sent as the document declares it (a string) or as a JSON number,
/// which plans' fees and prices accept too; [`parse_decimal`] then checks it.
pub fn string_or_number<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    struct Text;
    impl serde::de::Visitor<'_> for Text {
        type Value = String;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a decimal number, e.g. \"12.50\"")
        }
        fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<String, E> {
            Ok(v.to_owned())
        }
        fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<String, E> {
            Ok(v.to_string())
        }
        fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<String, E> {
            Ok(v.to_string())
        }
        // `Display` for f64 writes the shortest digits that read back the same, never an exponent.
        fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<String, E> {
            Ok(v.to_string())
        }
    }
    deserializer.deserialize_any(Text)
}

/// [`string_or_number`] for a field a change may leave out (`#[serde(default)]`); `null` is
/// refused, as the document allows a string or a number only.
pub fn some_string_or_number<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Option<String>, D::Error> {
    string_or_number(deserializer).map(Some)
}

/// JSON Schema counts `670.0` as an integer, so clients may send it where an
/// integer is documented; serde would refuse it.
fn integral_floats_to_integers(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Number(n) if n.is_f64() => {
            if let Some(f) = n.as_f64()
                && f.fract() == 0.0
                && f.abs() < 9.0e15
            {
                *value = serde_json::Value::from(f as i64);
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(integral_floats_to_integers),
        serde_json::Value::Object(map) => map.values_mut().for_each(integral_floats_to_integers),
        _ => {}
    }
}

/// Postgres text cannot hold NUL, so such input is refused at the edge, naming the field as
/// the other checks do (`limits[0].name`).
fn nul_in(value: &serde_json::Value, here: String) -> Option<String> {
    let key = |k: &str| {
        let k = k.replace('\0', "\\0");
        if here.is_empty() { k } else { format!("{here}.{k}") }
    };
    match value {
        serde_json::Value::String(s) if s.contains('\0') => Some(if here.is_empty() { ".".into() } else { here }),
        serde_json::Value::Array(items) => {
            items.iter().enumerate().find_map(|(i, v)| nul_in(v, format!("{here}[{i}]")))
        }
        serde_json::Value::Object(map) => map.iter().find_map(|(k, v)| {
            if k.contains('\0') {
                return Some(key(k));
            }
            nul_in(v, key(k))
        }),
        _ => None,
    }
}

/// Parses the query string after authentication, so an unauthenticated
/// caller always gets 401 first. Text parameters are documented as free of
/// NUL (the pattern `^[^\u0000]*$`), which Postgres text cannot hold: one with NUL is 422
/// naming the parameter.
pub fn parse_query<T: serde::de::DeserializeOwned>(req: &actix_web::HttpRequest) -> ApiResult<T> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(req.query_string())
        .map_err(|e| ApiError::BadRequest(format!("the query string is not valid: {e}")))?;
    if let Some((name, _)) = pairs.iter().find(|(name, value)| name.contains('\0') || value.contains('\0')) {
        let name = name.replace('\0', "\\0");
        return Err(tollgate_core::Error::invalid(name, "text cannot contain NUL characters").into());
    }
    let query = serde_urlencoded::Deserializer::new(form_urlencoded::parse(req.query_string().as_bytes()));
    serde_path_to_error::deserialize(query).map_err(|e| unparsed(e, "the query string", "the query parameter"))
}

/// Refuses a query parameter longer than its documented maximum (422).
pub fn check_len(name: &'static str, value: Option<&str>, max: usize) -> ApiResult<()> {
    match value {
        Some(v) if v.chars().count() > max => {
            Err(tollgate_core::Error::invalid(name, format!("use at most {max} characters")).into())
        }
        _ => Ok(()),
    }
}

/// A `201 Created` whose `Location` is where the new resource is read (RFC 9110 §15.3.2).
pub fn created(location: String) -> actix_web::HttpResponseBuilder {
    let mut response = actix_web::HttpResponse::Created();
    response.insert_header((actix_web::http::header::LOCATION, location));
    response
}

/// A timestamp the caller sent, as RFC 3339, in UTC. One whose UTC form leaves the years
/// 0000–9999 (`9999-12-31T23:59:59-01:00`) is refused here: storing it panicked.
pub fn parse_rfc3339(field: &'static str, raw: &str) -> tollgate_core::Result<time::OffsetDateTime> {
    time::OffsetDateTime::parse(raw, &time::format_description::well_known::Rfc3339)
        .ok()
        .and_then(|t| t.checked_to_offset(time::UtcOffset::UTC))
        .ok_or_else(|| tollgate_core::Error::invalid(field, "use an RFC 3339 date-time such as 2027-01-31T00:00:00Z"))
}

/// Timestamps in answers are RFC 3339 strings, as the document declares.
pub fn rfc3339(t: time::OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339).unwrap_or_default()
}
