//! Join tokens: creation, parsing and checking.

use super::{random_string, sha256_hex};
use serde::{Deserialize, Serialize};
use std::fmt;

/// Where token records live in the store.
pub const TOKEN_PREFIX: &str = "/flotilla/tokens/";
const ID_LEN: usize = 6;
const SECRET_LEN: usize = 16;

/// What a token lets its holder join as.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// A control-plane member.
    Master,
    /// A worker node.
    Worker,
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Role::Master => "master",
            Role::Worker => "worker",
        })
    }
}

/// A token as stored: never the secret itself.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct TokenRecord {
    /// Public part of the token.
    pub id: String,
    /// What it joins as.
    pub role: Role,
    /// Hex SHA-256 of the secret part.
    pub secret_sha256: String,
    /// Creation time, Unix seconds.
    pub created: u64,
    /// Expiry, Unix seconds.
    pub expires: u64,
    /// Set by `ctl token revoke`.
    pub revoked: bool,
}

impl TokenRecord {
    /// The store key of this record.
    pub fn key(&self) -> String {
        key(&self.id)
    }
}

/// The store key of token `id`.
pub fn key(id: &str) -> String {
    format!("{TOKEN_PREFIX}{id}")
}

/// Makes a new token: the string to hand out, and the record to store.
pub fn generate(role: Role, ttl_secs: u64, now: u64) -> (String, TokenRecord) {
    let id = random_string(ID_LEN);
    let secret = random_string(SECRET_LEN);
    let record = TokenRecord {
        id: id.clone(),
        role,
        secret_sha256: sha256_hex(&secret),
        created: now,
        expires: now.saturating_add(ttl_secs),
        revoked: false,
    };
    (format!("{id}.{secret}"), record)
}

/// Why a token was refused. Each says which problem it is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Not of the form `ID.SECRET`.
    #[error("malformed token: expected ID.SECRET.CAHASH (6 and 16 characters of a-z, 0-9, then 64 hex digits), as `ctl token create` prints it")]
    Malformed,
    /// No token with this id exists.
    #[error("unknown token {id}: it was never created here")]
    Unknown {
        /// Token id.
        id: String,
    },
    /// The id exists but the secret is wrong.
    #[error("wrong secret for token {id}")]
    WrongSecret {
        /// Token id.
        id: String,
    },
    /// The token expired.
    #[error("token {id} expired {ago}s ago; create a new one with `ctl token create`")]
    Expired {
        /// Token id.
        id: String,
        /// Seconds since expiry.
        ago: u64,
    },
    /// The token was revoked.
    #[error("token {id} was revoked")]
    Revoked {
        /// Token id.
        id: String,
    },
    /// The token is for another role.
    #[error("token {id} is a {has} token; this needs a {needs} token")]
    WrongRole {
        /// Token id.
        id: String,
        /// The token's role.
        has: Role,
        /// The role needed.
        needs: Role,
    },
}

/// Splits a token into id and secret.
///
/// # Errors
/// [`TokenError::Malformed`] unless it is `ID.SECRET` with the right lengths
/// and characters.
pub fn parse(token: &str) -> Result<(&str, &str), TokenError> {
    let mut parts = token.trim().split('.');
    let (Some(id), Some(secret)) = (parts.next(), parts.next()) else {
        return Err(TokenError::Malformed);
    };
    // An optional third part is the CA fingerprint, for the joining side.
    let ca_ok = parts
        .next()
        .is_none_or(|hash| hash.len() == 64 && hash.bytes().all(|b| b.is_ascii_hexdigit()));
    let valid = |s: &str, len: usize| {
        s.len() == len
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    };
    if valid(id, ID_LEN) && valid(secret, SECRET_LEN) && ca_ok && parts.next().is_none() {
        Ok((id, secret))
    } else {
        Err(TokenError::Malformed)
    }
}

/// The CA fingerprint (`sha256:HEX`) a token carries, if it has one.
pub fn ca_fingerprint(token: &str) -> Option<String> {
    token
        .trim()
        .split('.')
        .nth(2)
        .map(|hash| format!("sha256:{}", hash.to_ascii_lowercase()))
}

/// Checks `token` against its stored record (None if none is stored).
///
/// # Errors
/// The [`TokenError`] that says why it is refused.
pub fn check(
    token: &str,
    record: Option<&TokenRecord>,
    needs: Role,
    now: u64,
) -> Result<(), TokenError> {
    let (id, secret) = parse(token)?;
    let record = record.ok_or_else(|| TokenError::Unknown { id: id.into() })?;
    if !super::secrets_match(&sha256_hex(secret), &record.secret_sha256) {
        return Err(TokenError::WrongSecret { id: id.into() });
    }
    if record.revoked {
        return Err(TokenError::Revoked { id: id.into() });
    }
    if now >= record.expires {
        return Err(TokenError::Expired {
            id: id.into(),
            ago: now - record.expires,
        });
    }
    if record.role != needs {
        return Err(TokenError::WrongRole {
            id: id.into(),
            has: record.role,
            needs,
        });
    }
    Ok(())
}

/// Seconds since the Unix epoch (0 if the clock is before it).
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_tokens_parse_and_check() {
        let (token, record) = generate(Role::Master, 60, 1000);
        assert!(parse(&token).is_ok());
        assert_eq!(check(&token, Some(&record), Role::Master, 1010), Ok(()));
    }

    #[test]
    fn refusals_say_why() {
        let (token, record) = generate(Role::Master, 60, 1000);
        let id = record.id.clone();
        let (_, other_secret_token) = {
            let (t, _) = generate(Role::Master, 60, 1000);
            (
                t.clone(),
                format!("{id}.{}", t.split_once('.').map(|p| p.1).unwrap_or("")),
            )
        };
        let mut revoked = record.clone();
        revoked.revoked = true;
        let cases: Vec<(&str, Option<&TokenRecord>, Role, u64, TokenError)> = vec![
            (
                "nodot",
                Some(&record),
                Role::Master,
                1010,
                TokenError::Malformed,
            ),
            (
                "ABCDEF.0123456789abcdef",
                Some(&record),
                Role::Master,
                1010,
                TokenError::Malformed,
            ),
            (
                &token,
                None,
                Role::Master,
                1010,
                TokenError::Unknown { id: id.clone() },
            ),
            (
                &other_secret_token,
                Some(&record),
                Role::Master,
                1010,
                TokenError::WrongSecret { id: id.clone() },
            ),
            (
                &token,
                Some(&revoked),
                Role::Master,
                1010,
                TokenError::Revoked { id: id.clone() },
            ),
            (
                &token,
                Some(&record),
                Role::Master,
                1070,
                TokenError::Expired {
                    id: id.clone(),
                    ago: 10,
                },
            ),
            (
                &token,
                Some(&record),
                Role::Worker,
                1010,
                TokenError::WrongRole {
                    id: id.clone(),
                    has: Role::Master,
                    needs: Role::Worker,
                },
            ),
        ];
        for (token, record, role, now, want) in cases {
            assert_eq!(check(token, record, role, now), Err(want));
        }
    }
}
