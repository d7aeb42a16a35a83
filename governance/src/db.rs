//! The statements of the domain, written once for both engines.
//!
//! Statements are written in the dialect both SQLite and PostgreSQL accept (`ON CONFLICT DO
//! NOTHING`, `coalesce`, `LIMIT`), with SQLite's numbered placeholders `?1`, which are
//! rewritten to `$1` for PostgreSQL. Arguments and rows are a handful of plain values, so the
//! modules of the domain never see which engine runs their statement.

use std::borrow::Cow;
use std::error::Error;

use tokio_postgres::types::{to_sql_checked, IsNull, ToSql, Type};

use crate::store::StoreError;

/// One statement argument.
#[derive(Clone, Debug)]
pub(crate) enum Arg<'a> {
    Null,
    Int(i64),
    Real(f64),
    Text(Cow<'a, str>),
    Blob(Cow<'a, [u8]>),
}

impl Arg<'_> {
    pub(crate) fn into_owned(self) -> Arg<'static> {
        match self {
            Arg::Null => Arg::Null,
            Arg::Int(i) => Arg::Int(i),
            Arg::Real(f) => Arg::Real(f),
            Arg::Text(t) => Arg::Text(Cow::Owned(t.into_owned())),
            Arg::Blob(b) => Arg::Blob(Cow::Owned(b.into_owned())),
        }
    }
}

impl<'a> From<&'a str> for Arg<'a> {
    fn from(s: &'a str) -> Self {
        Arg::Text(Cow::Borrowed(s))
    }
}

impl<'a> From<&'a String> for Arg<'a> {
    fn from(s: &'a String) -> Self {
        Arg::Text(Cow::Borrowed(s))
    }
}

impl From<String> for Arg<'_> {
    fn from(s: String) -> Self {
        Arg::Text(Cow::Owned(s))
    }
}

impl<'a> From<&'a [u8]> for Arg<'a> {
    fn from(b: &'a [u8]) -> Self {
        Arg::Blob(Cow::Borrowed(b))
    }
}

impl From<i64> for Arg<'_> {
    fn from(i: i64) -> Self {
        Arg::Int(i)
    }
}

impl From<u32> for Arg<'_> {
    fn from(i: u32) -> Self {
        Arg::Int(i.into())
    }
}

impl From<f64> for Arg<'_> {
    fn from(f: f64) -> Self {
        Arg::Real(f)
    }
}

impl From<u16> for Arg<'_> {
    fn from(i: u16) -> Self {
        Arg::Int(i.into())
    }
}

impl<'a, T: Into<Arg<'a>>> From<Option<T>> for Arg<'a> {
    fn from(v: Option<T>) -> Self {
        v.map_or(Arg::Null, Into::into)
    }
}

impl<'a> From<&'a Option<String>> for Arg<'a> {
    fn from(v: &'a Option<String>) -> Self {
        v.as_deref().into()
    }
}

/// `args![a, b, ...]`: statement arguments.
macro_rules! args {
    ($($a:expr),* $(,)?) => { vec![$($crate::db::Arg::from($a)),*] };
}
pub(crate) use args;

impl rusqlite::ToSql for Arg<'_> {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        use rusqlite::types::{ToSqlOutput, ValueRef};
        Ok(ToSqlOutput::Borrowed(match self {
            Arg::Null => ValueRef::Null,
            Arg::Int(i) => ValueRef::Integer(*i),
            Arg::Real(f) => ValueRef::Real(*f),
            Arg::Text(t) => ValueRef::Text(t.as_bytes()),
            Arg::Blob(b) => ValueRef::Blob(b),
        }))
    }
}

impl ToSql for Arg<'_> {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut bytes::BytesMut,
    ) -> Result<IsNull, Box<dyn Error + Sync + Send>> {
        let mismatch = || format!("a {self:?} does not fit a column of type {ty}").into();
        match self {
            Arg::Null => Ok(IsNull::Yes),
            Arg::Int(i) => match *ty {
                Type::INT2 => i16::try_from(*i)?.to_sql(ty, out),
                Type::INT4 => i32::try_from(*i)?.to_sql(ty, out),
                Type::INT8 => i.to_sql(ty, out),
                _ => Err(mismatch()),
            },
            Arg::Real(f) => match *ty {
                Type::FLOAT8 => f.to_sql(ty, out),
                Type::FLOAT4 => (*f as f32).to_sql(ty, out),
                _ => Err(mismatch()),
            },
            Arg::Text(t) if <&str as ToSql>::accepts(ty) => t.as_ref().to_sql(ty, out),
            Arg::Blob(b) if <&[u8] as ToSql>::accepts(ty) => b.as_ref().to_sql(ty, out),
            _ => Err(mismatch()),
        }
    }

    fn accepts(_: &Type) -> bool {
        // Checked per value in `to_sql`, which knows the variant.
        true
    }

    to_sql_checked!();
}

/// One value of a row.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Val {
    Null,
    Int(i64),
    Real(f64),
    Text(String),
    Blob(Vec<u8>),
}

/// One result row.
#[derive(Debug)]
pub(crate) struct Row(pub Vec<Val>);

impl Row {
    /// Column `i` as a `T`.
    pub(crate) fn get<T: FromVal>(&self, i: usize) -> Result<T, StoreError> {
        self.0
            .get(i)
            .and_then(T::from_val)
            .ok_or(StoreError::Column {
                index: i,
                expected: T::EXPECTED,
            })
    }

    pub(crate) fn from_sqlite(r: &rusqlite::Row<'_>) -> rusqlite::Result<Row> {
        use rusqlite::types::ValueRef;
        let n = r.as_ref().column_count();
        let mut out = Vec::with_capacity(n);
        for i in 0..n {
            out.push(match r.get_ref(i)? {
                ValueRef::Null => Val::Null,
                ValueRef::Integer(i) => Val::Int(i),
                ValueRef::Real(f) => Val::Real(f),
                ValueRef::Text(t) => Val::Text(String::from_utf8_lossy(t).into_owned()),
                ValueRef::Blob(b) => Val::Blob(b.to_vec()),
            });
        }
        Ok(Row(out))
    }

    pub(crate) fn from_postgres(r: &tokio_postgres::Row) -> Result<Row, tokio_postgres::Error> {
        let mut out = Vec::with_capacity(r.len());
        for (i, col) in r.columns().iter().enumerate() {
            let v = match *col.type_() {
                Type::INT2 => r.try_get::<_, Option<i16>>(i)?.map(|v| Val::Int(v.into())),
                Type::INT4 => r.try_get::<_, Option<i32>>(i)?.map(|v| Val::Int(v.into())),
                Type::INT8 => r.try_get::<_, Option<i64>>(i)?.map(Val::Int),
                Type::BOOL => r.try_get::<_, Option<bool>>(i)?.map(|v| Val::Int(v.into())),
                Type::FLOAT4 => r.try_get::<_, Option<f32>>(i)?.map(|v| Val::Real(v.into())),
                Type::FLOAT8 => r.try_get::<_, Option<f64>>(i)?.map(Val::Real),
                Type::BYTEA => r.try_get::<_, Option<Vec<u8>>>(i)?.map(Val::Blob),
                _ => r.try_get::<_, Option<String>>(i)?.map(Val::Text),
            };
            out.push(v.unwrap_or(Val::Null));
        }
        Ok(Row(out))
    }
}

/// A Rust type a column can be read as.
pub(crate) trait FromVal: Sized {
    const EXPECTED: &'static str;
    fn from_val(v: &Val) -> Option<Self>;
}

impl FromVal for String {
    const EXPECTED: &'static str = "text";
    fn from_val(v: &Val) -> Option<Self> {
        match v {
            Val::Text(t) => Some(t.clone()),
            _ => None,
        }
    }
}

impl FromVal for i64 {
    const EXPECTED: &'static str = "an integer";
    fn from_val(v: &Val) -> Option<Self> {
        match v {
            Val::Int(i) => Some(*i),
            _ => None,
        }
    }
}

impl FromVal for f64 {
    const EXPECTED: &'static str = "a number";
    fn from_val(v: &Val) -> Option<Self> {
        match v {
            Val::Real(f) => Some(*f),
            Val::Int(i) => Some(*i as f64),
            _ => None,
        }
    }
}

impl FromVal for u32 {
    const EXPECTED: &'static str = "an integer from 0 to 4294967295";
    fn from_val(v: &Val) -> Option<Self> {
        match v {
            Val::Int(i) => u32::try_from(*i).ok(),
            _ => None,
        }
    }
}

impl FromVal for u16 {
    const EXPECTED: &'static str = "an integer from 0 to 65535";
    fn from_val(v: &Val) -> Option<Self> {
        match v {
            Val::Int(i) => u16::try_from(*i).ok(),
            _ => None,
        }
    }
}

impl FromVal for Vec<u8> {
    const EXPECTED: &'static str = "bytes";
    fn from_val(v: &Val) -> Option<Self> {
        match v {
            Val::Blob(b) => Some(b.clone()),
            _ => None,
        }
    }
}

impl<T: FromVal> FromVal for Option<T> {
    const EXPECTED: &'static str = T::EXPECTED;
    fn from_val(v: &Val) -> Option<Self> {
        match v {
            Val::Null => Some(None),
            v => T::from_val(v).map(Some),
        }
    }
}

/// SQLite's `?1` placeholders as PostgreSQL's `$1`. Statements hold no `?` elsewhere.
pub(crate) fn to_postgres(sql: &str) -> String {
    sql.replace('?', "$")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_rewritten_and_values_read_back() {
        assert_eq!(
            to_postgres("SELECT a FROM t WHERE b = ?1 AND (?2 IS NULL OR c = ?2)"),
            "SELECT a FROM t WHERE b = $1 AND ($2 IS NULL OR c = $2)"
        );
        let row = Row(vec![Val::Text("x".into()), Val::Null, Val::Int(7)]);
        assert_eq!(row.get::<String>(0).unwrap(), "x");
        assert_eq!(row.get::<Option<String>>(1).unwrap(), None);
        assert_eq!(row.get::<i64>(2).unwrap(), 7);
        assert!(matches!(
            row.get::<String>(2),
            Err(StoreError::Column { index: 2, .. })
        ));
        assert!(row.get::<i64>(9).is_err());
    }
}
