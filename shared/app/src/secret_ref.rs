//! Where a shop's webhook secrets live: the reference its record keeps,
//! never the secret itself.
//!
//! - `env:CASHBACK_SECRET_<NAME>`: that environment variable. Only names
//!   under [`ENV_SECRET_PREFIX`] are accepted, so a reference can never
//!   point at another setting of the function (its AWS keys, the link
//!   secret, or a value anyone knows such as `AWS_REGION`, which would let
//!   anyone sign that shop's webhooks).
//! - `ssm:/parameter/name`: an SSM Parameter Store parameter.
//!
//! Parsed once into a [`SecretRef`]: onboarding refuses a reference that
//! does not parse, and the webhook function reads the secret from the
//! parsed place, by the same rule.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The prefix every `env:` secret reference must name a variable under:
/// a shop's reference can then never point at another setting of the
/// function (its AWS keys, the link secret, or a value anyone knows such as
/// `AWS_REGION`, which would let anyone sign that shop's webhooks).
pub const ENV_SECRET_PREFIX: &str = "CASHBACK_SECRET_";

/// The longest SSM parameter name (SSM's own limit).
pub const MAX_SSM_NAME: usize = 2048;

/// A valid reference to a shop's webhook secrets. Made only by
/// [`SecretRef::parse`]; shown (and stored) as `env:NAME` or `ssm:NAME`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct SecretRef(Place);

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Place {
    Env(String),
    Ssm(String),
}

/// Where a [`SecretRef`] points, to read the secret from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretPlace<'a> {
    /// An environment variable, always under [`ENV_SECRET_PREFIX`].
    Env(&'a str),
    /// An SSM parameter name.
    Ssm(&'a str),
}

/// Why a reference cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretRefError {
    /// `env:` with a name outside the prefix, or not letters, digits and `_`.
    #[error("env: must name a variable {ENV_SECRET_PREFIX}<NAME> (letters, digits and _)")]
    EnvName,
    /// `ssm:` with no name, a character SSM does not allow, or too long.
    #[error("ssm: needs a parameter name such as /cashback/shop/webhook")]
    SsmName,
    /// Neither `env:` nor `ssm:`.
    #[error("expected env:{ENV_SECRET_PREFIX}<NAME> or ssm:/parameter/name")]
    Scheme,
}

impl SecretRef {
    /// `env:CASHBACK_SECRET_<NAME>` or `ssm:/parameter/name`, surrounding
    /// spaces ignored; any other variable name is refused (see
    /// [`ENV_SECRET_PREFIX`]).
    pub fn parse(reference: &str) -> Result<SecretRef, SecretRefError> {
        let reference = reference.trim();
        if let Some(name) = reference.strip_prefix("env:") {
            let suffix = name.strip_prefix(ENV_SECRET_PREFIX).unwrap_or_default();
            let valid =
                !suffix.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            valid
                .then(|| SecretRef(Place::Env(name.to_string())))
                .ok_or(SecretRefError::EnvName)
        } else if let Some(name) = reference.strip_prefix("ssm:") {
            // SSM names: letters, digits and .-_/ ; at most 2048 characters.
            let valid = !name.is_empty()
                && name.len() <= MAX_SSM_NAME
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "._-/".contains(c));
            valid
                .then(|| SecretRef(Place::Ssm(name.to_string())))
                .ok_or(SecretRefError::SsmName)
        } else {
            Err(SecretRefError::Scheme)
        }
    }

    /// Where the secrets are to be read from.
    pub fn place(&self) -> SecretPlace<'_> {
        match &self.0 {
            Place::Env(name) => SecretPlace::Env(name),
            Place::Ssm(name) => SecretPlace::Ssm(name),
        }
    }
}

impl fmt::Display for SecretRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Place::Env(name) => write!(f, "env:{name}"),
            Place::Ssm(name) => write!(f, "ssm:{name}"),
        }
    }
}

impl FromStr for SecretRef {
    type Err = SecretRefError;

    fn from_str(reference: &str) -> Result<SecretRef, SecretRefError> {
        SecretRef::parse(reference)
    }
}

impl TryFrom<String> for SecretRef {
    type Error = SecretRefError;

    fn try_from(reference: String) -> Result<SecretRef, SecretRefError> {
        SecretRef::parse(&reference)
    }
}

impl From<SecretRef> for String {
    fn from(reference: SecretRef) -> String {
        reference.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_name_an_env_var_or_an_ssm_parameter() {
        assert_eq!(
            SecretRef::parse("env:CASHBACK_SECRET_DEMO_WEBHOOK").map(|r| r.to_string()),
            Ok("env:CASHBACK_SECRET_DEMO_WEBHOOK".to_string())
        );
        let ssm = SecretRef::parse(" ssm:/cashback/demo/webhook ").unwrap();
        assert_eq!(ssm.place(), SecretPlace::Ssm("/cashback/demo/webhook"));
        assert_eq!(ssm.to_string(), "ssm:/cashback/demo/webhook");
        let too_long = format!("ssm:/{}", "a".repeat(MAX_SSM_NAME));
        for (bad, why) in [
            ("", SecretRefError::Scheme),
            ("env:", SecretRefError::EnvName),
            ("env:A-B", SecretRefError::EnvName),
            ("env:HOME", SecretRefError::EnvName),
            ("env:CASHBACK_SECRET_", SecretRefError::EnvName),
            ("env:CASHBACK_SECRET_A-B", SecretRefError::EnvName),
            ("ssm:", SecretRefError::SsmName),
            ("ssm:/a b", SecretRefError::SsmName),
            (too_long.as_str(), SecretRefError::SsmName),
            ("vault:x", SecretRefError::Scheme),
            ("plain", SecretRefError::Scheme),
        ] {
            assert_eq!(SecretRef::parse(bad), Err(why), "{bad:?}");
        }
    }

    #[test]
    fn a_reference_is_kept_as_the_string_it_was_parsed_from() {
        let reference = SecretRef::parse("env:CASHBACK_SECRET_A").unwrap();
        let json = serde_json::to_string(&reference).unwrap();
        assert_eq!(json, r#""env:CASHBACK_SECRET_A""#);
        assert_eq!(serde_json::from_str::<SecretRef>(&json).unwrap(), reference);
        assert!(serde_json::from_str::<SecretRef>(r#""env:AWS_REGION""#).is_err());
    }
}
