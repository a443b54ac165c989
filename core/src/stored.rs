//! Domain enums stored as Postgres enums. `stored_enum!` declares each one
//! with a single list of names, used alike in Rust, SQL and JSON; a name
//! the database or a caller sends that is not on the list is an error, never
//! a default. `StoredPeriod` stores `tollgate_protocol::Period` as
//! `limit_period`, so limits use the protocol's one definition of periods.

use std::fmt;

use sqlx::encode::IsNull;
use sqlx::error::BoxDynError;
use sqlx::postgres::{PgArgumentBuffer, PgTypeInfo, PgValueRef};
use sqlx::{Decode, Encode, Postgres, Type};
use tollgate_protocol::Period;

/// A name that is not one of an enum's names.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("use {}", or_list(.expected))]
pub struct UnknownName {
    pub value: String,
    pub expected: Vec<&'static str>,
}

impl UnknownName {
    /// The validation error for the input field that held the name.
    pub fn at(self, field: &'static str) -> crate::Error {
        crate::Error::invalid(field, self.to_string())
    }
}

/// `a, b or c`.
fn or_list(names: &[&str]) -> String {
    match names.split_last() {
        Some((last, [])) => (*last).to_owned(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
        None => String::new(),
    }
}

/// Declares an enum stored as the Postgres enum `$pg`, with its names.
macro_rules! stored_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident as $pg:literal {
            $($(#[$vmeta:meta])* $variant:ident = $text:literal,)+
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, sqlx::Type, serde::Serialize, serde::Deserialize)]
        #[sqlx(type_name = $pg)]
        pub enum $name {
            $($(#[$vmeta])* #[sqlx(rename = $text)] #[serde(rename = $text)] $variant,)+
        }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub const fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)+
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl std::str::FromStr for $name {
            type Err = $crate::stored::UnknownName;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::ALL.iter().copied().find(|v| v.as_str() == s).ok_or_else(|| $crate::stored::UnknownName {
                    value: s.to_owned(),
                    expected: Self::ALL.iter().map(|v| v.as_str()).collect(),
                })
            }
        }
    };
}

pub(crate) use stored_enum;

/// A limit's period as the Postgres enum `limit_period`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoredPeriod(pub Period);

impl Type<Postgres> for StoredPeriod {
    fn type_info() -> PgTypeInfo {
        PgTypeInfo::with_name("limit_period")
    }
}

impl Encode<'_, Postgres> for StoredPeriod {
    fn encode_by_ref(&self, buf: &mut PgArgumentBuffer) -> Result<IsNull, BoxDynError> {
        <&str as Encode<Postgres>>::encode(self.0.as_str(), buf)
    }
}

impl<'r> Decode<'r, Postgres> for StoredPeriod {
    fn decode(value: PgValueRef<'r>) -> Result<Self, BoxDynError> {
        Ok(StoredPeriod(<&str as Decode<Postgres>>::decode(value)?.parse()?))
    }
}

impl fmt::Display for StoredPeriod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

#[cfg(test)]
mod tests {
    stored_enum! {
        pub enum Colour as "colour" {
            Red = "red",
            DarkBlue = "dark_blue",
            Green = "green",
        }
    }

    #[test]
    fn names_round_trip_and_unknown_names_are_errors() {
        for colour in Colour::ALL {
            assert_eq!(colour.as_str().parse::<Colour>(), Ok(*colour));
            assert_eq!(serde_json::to_value(colour).expect("serialises"), serde_json::json!(colour.as_str()));
        }
        let err = "blue".parse::<Colour>().expect_err("not a colour");
        assert_eq!(err.to_string(), "use red, dark_blue or green");
        assert!(serde_json::from_str::<Colour>("\"blue\"").is_err());
    }
}
