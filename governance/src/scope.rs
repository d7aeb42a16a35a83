//! What an API key may do.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A permission carried by an API key.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Scope {
    /// Read the tenant's data.
    Read,
    /// Create and change the tenant's data (intents, decisions, agents).
    Write,
    /// Manage the tenant: keys, policies, escalation resolution.
    Admin,
    /// Read-only access to evidence and the ledger, for auditors.
    Auditor,
    /// Read-only access to one client-portal summary, named by its token.
    Client(String),
    /// Use the MCP endpoint.
    Mcp,
}

/// A scope that is not one of the known ones.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown scope {0:?}: expected read, write, admin, auditor, mcp or client:<token>")]
pub struct ScopeError(pub String);

impl FromStr for Scope {
    type Err = ScopeError;

    fn from_str(s: &str) -> Result<Scope, ScopeError> {
        Ok(match s {
            "read" => Scope::Read,
            "write" => Scope::Write,
            "admin" => Scope::Admin,
            "auditor" => Scope::Auditor,
            "mcp" => Scope::Mcp,
            _ => match s.strip_prefix("client:") {
                Some(token)
                    if !token.is_empty()
                        && token.len() <= 128
                        && token
                            .chars()
                            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)) =>
                {
                    Scope::Client(token.to_owned())
                }
                _ => return Err(ScopeError(s.to_owned())),
            },
        })
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scope::Read => f.write_str("read"),
            Scope::Write => f.write_str("write"),
            Scope::Admin => f.write_str("admin"),
            Scope::Auditor => f.write_str("auditor"),
            Scope::Mcp => f.write_str("mcp"),
            Scope::Client(t) => write!(f, "client:{t}"),
        }
    }
}

impl Serialize for Scope {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Scope {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// Parses a comma-separated list (`read,write,client:abc`), sorted and without duplicates.
pub fn parse_scopes(list: &str) -> Result<Vec<Scope>, ScopeError> {
    let mut scopes = list
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::parse)
        .collect::<Result<Vec<Scope>, _>>()?;
    if scopes.is_empty() {
        return Err(ScopeError(list.to_owned()));
    }
    scopes.sort();
    scopes.dedup();
    Ok(scopes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_parse_and_print_back() {
        let s = parse_scopes("write, read,client:portal-7,read").unwrap();
        assert_eq!(
            s,
            vec![Scope::Read, Scope::Write, Scope::Client("portal-7".into())]
        );
        let printed: Vec<String> = s.iter().map(ToString::to_string).collect();
        assert_eq!(printed, ["read", "write", "client:portal-7"]);
        assert_eq!(
            parse_scopes("read,root").unwrap_err(),
            ScopeError("root".into())
        );
        assert!(parse_scopes("client:").is_err());
        assert!(parse_scopes("client:a b").is_err());
        assert!(parse_scopes(" , ").is_err());
    }
}
