//! Credentials from the AWS configuration files, for a machine that keeps
//! them there rather than in the environment: the profile `AWS_PROFILE`
//! (else `default`) of `AWS_SHARED_CREDENTIALS_FILE` (else
//! `~/.aws/credentials`), and its region from `AWS_CONFIG_FILE` (else
//! `~/.aws/config`). The environment's `AWS_ACCESS_KEY_ID` and friends win
//! (object_store reads those itself).
//!
//! Why our own reader: object_store reads only the environment and cloud
//! metadata services, and the AWS SDK's full configuration loader would
//! add a second HTTP stack for two INI lookups. The values are handed to
//! the S3 client and never stored, printed or logged.

use std::path::PathBuf;

/// The keys of one profile.
pub struct FileCredentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: Option<String>,
    pub region: Option<String>,
}

/// The profile's credentials, where the files have both keys.
pub fn from_files() -> Option<FileCredentials> {
    let home = std::env::var_os("HOME").map(PathBuf::from);
    let file = |var: &str, name: &str| {
        std::env::var_os(var)
            .map(PathBuf::from)
            .or_else(|| home.as_ref().map(|h| h.join(".aws").join(name)))
    };
    let profile = std::env::var("AWS_PROFILE").unwrap_or_else(|_| "default".into());
    let creds =
        std::fs::read_to_string(file("AWS_SHARED_CREDENTIALS_FILE", "credentials")?).ok()?;
    let section = |text: &str, header: &str, key: &str| ini_value(text, header, key);
    let access_key_id = section(&creds, &profile, "aws_access_key_id")?;
    let secret_access_key = section(&creds, &profile, "aws_secret_access_key")?;
    let session_token = section(&creds, &profile, "aws_session_token");
    // In the config file a named profile's section is `[profile NAME]`.
    let config_header = if profile == "default" {
        profile.clone()
    } else {
        format!("profile {profile}")
    };
    let region = file("AWS_CONFIG_FILE", "config")
        .and_then(|p| std::fs::read_to_string(p).ok())
        .and_then(|text| section(&text, &config_header, "region"));
    Some(FileCredentials {
        access_key_id,
        secret_access_key,
        session_token,
        region,
    })
}

/// `key = value` under `[header]` of an INI text.
fn ini_value(text: &str, header: &str, key: &str) -> Option<String> {
    let mut inside = false;
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('#') || line.starts_with(';') || line.is_empty() {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            inside = name.trim() == header;
            continue;
        }
        if inside
            && let Some((k, v)) = line.split_once('=')
            && k.trim() == key
        {
            return Some(v.trim().to_string());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::ini_value;

    #[test]
    fn values_are_read_from_their_own_section() {
        let text = "[default]\naws_access_key_id = A\n# note\n[profile ci]\nregion=eu-west-1\n[other]\naws_access_key_id = B\n";
        assert_eq!(
            ini_value(text, "default", "aws_access_key_id").as_deref(),
            Some("A")
        );
        assert_eq!(
            ini_value(text, "other", "aws_access_key_id").as_deref(),
            Some("B")
        );
        assert_eq!(
            ini_value(text, "profile ci", "region").as_deref(),
            Some("eu-west-1")
        );
        assert_eq!(ini_value(text, "default", "region"), None);
    }
}
