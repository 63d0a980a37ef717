//! The S3 client settings (`S3_ENDPOINT`, `S3_REGION`, `S3_PATH_STYLE`,
//! `S3_RETRY_TIMEOUT_SECS`, the usual `AWS_*` credential variables or
//! `AWS_SHARED_CREDENTIALS_FILE` with `AWS_PROFILE`) and what object_store
//! does not offer: listing and aborting the multipart uploads a killed
//! process left unfinished.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret as _, SecretString};
use url::Url;

use crate::config::{ConfigError, Env};

/// How an S3 client is built.
#[derive(Clone)]
pub struct S3Options {
    /// `S3_ENDPOINT` for S3-compatible stores (Garage, MinIO, ...); `None`
    /// is AWS itself.
    pub endpoint: Option<Url>,
    /// `S3_REGION` (else `AWS_REGION`, `AWS_DEFAULT_REGION`, `us-east-1`).
    pub region: String,
    /// `S3_PATH_STYLE`: `endpoint/bucket/key` rather than `bucket.endpoint/key`;
    /// defaults to true when `S3_ENDPOINT` is set.
    pub path_style: bool,
    /// `S3_RETRY_TIMEOUT_SECS`: how long one request is retried before it fails.
    pub retry_timeout: Duration,
    /// Every other `AWS_*` variable, handed to object_store as its `from_env`
    /// would (web identity, container credentials, ...).
    pub aws: Vec<(String, SecretString)>,
    /// Static credentials: the `AWS_ACCESS_KEY_ID` pair or a profile of
    /// `AWS_SHARED_CREDENTIALS_FILE`.
    pub credentials: Option<StaticCredentials>,
}

#[derive(Clone)]
pub struct StaticCredentials {
    pub access_key_id: String,
    pub secret_access_key: SecretString,
    pub session_token: Option<SecretString>,
}

impl Default for S3Options {
    fn default() -> Self {
        Self {
            endpoint: None,
            region: "us-east-1".to_owned(),
            path_style: false,
            retry_timeout: Duration::from_secs(60),
            aws: Vec::new(),
            credentials: None,
        }
    }
}

impl fmt::Debug for S3Options {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Options")
            .field("endpoint", &self.endpoint.as_ref().map(Url::as_str))
            .field("region", &self.region)
            .field("path_style", &self.path_style)
            .field("retry_timeout", &self.retry_timeout)
            .field(
                "access_key_id",
                &self.credentials.as_ref().map(|c| c.access_key_id.as_str()),
            )
            .finish_non_exhaustive()
    }
}

/// Variables read here, not passed through to object_store.
const OWN_AWS_VARS: &[&str] = &[
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_SHARED_CREDENTIALS_FILE",
    "AWS_PROFILE",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_ENDPOINT",
    "AWS_ENDPOINT_URL",
];

impl S3Options {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let endpoint = env.parse_or(
            "S3_ENDPOINT",
            None,
            "an http:// or https:// URL such as http://garage:3900",
            |v| {
                let url = Url::parse(v).ok()?;
                (matches!(url.scheme(), "http" | "https")
                    && url.host_str().is_some()
                    && url.query().is_none())
                .then_some(Some(url))
            },
        )?;
        let region_default = env
            .get("AWS_REGION")
            .or_else(|| env.get("AWS_DEFAULT_REGION"))
            .unwrap_or("us-east-1")
            .to_owned();
        let region = env.parse_or(
            "S3_REGION",
            region_default,
            "a region name such as eu-west-1 (letters, digits, - and _)",
            |v| {
                (v.len() <= 64
                    && v.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'))
                .then(|| v.to_owned())
            },
        )?;
        let path_style = env.parse_or(
            "S3_PATH_STYLE",
            endpoint.is_some(),
            "true or false",
            |v| match v {
                "true" | "1" => Some(true),
                "false" | "0" => Some(false),
                _ => None,
            },
        )?;
        let retry_timeout = env.seconds("S3_RETRY_TIMEOUT_SECS", 60, 1..=3600)?;
        let aws = env
            .with_prefix("AWS_")
            .filter(|(name, _)| !OWN_AWS_VARS.contains(name))
            .map(|(name, value)| (name.to_owned(), SecretString::from(value.to_owned())))
            .collect();
        Ok(Self {
            endpoint,
            region,
            path_style,
            retry_timeout,
            aws,
            credentials: credentials(env)?,
        })
    }

    /// The bucket's base URL, where keys and `?uploads` go.
    pub(crate) fn bucket_url(&self, bucket: &str) -> Result<Url, String> {
        let endpoint = match &self.endpoint {
            Some(endpoint) => endpoint.clone(),
            None => Url::parse(&format!("https://s3.{}.amazonaws.com", self.region))
                .map_err(|e| e.to_string())?,
        };
        let mut url = endpoint;
        if self.path_style {
            let base = url.path().trim_end_matches('/').to_owned();
            url.set_path(&format!("{base}/{bucket}"));
        } else {
            let host = url.host_str().ok_or("the endpoint has no host")?;
            let host = format!("{bucket}.{host}");
            url.set_host(Some(&host)).map_err(|e| e.to_string())?;
        }
        Ok(url)
    }
}

/// The `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY` pair, or else the
/// profile `AWS_PROFILE` (default `default`) of `AWS_SHARED_CREDENTIALS_FILE`.
/// `.env.example`'s placeholders (`change-me...`) count as unset.
fn credentials(env: &Env) -> Result<Option<StaticCredentials>, ConfigError> {
    let real = |name: &str| {
        env.get(name)
            .filter(|v| !v.starts_with(crate::config::EXAMPLE_SECRET_MARKER))
    };
    let token = real("AWS_SESSION_TOKEN").map(|t| SecretString::from(t.to_owned()));
    match (real("AWS_ACCESS_KEY_ID"), real("AWS_SECRET_ACCESS_KEY")) {
        (Some(id), Some(secret)) => {
            return Ok(Some(StaticCredentials {
                access_key_id: id.to_owned(),
                secret_access_key: SecretString::from(secret.to_owned()),
                session_token: token,
            }));
        }
        (Some(_), None) => {
            return Err(ConfigError {
                var: "AWS_SECRET_ACCESS_KEY",
                expected: "the secret of AWS_ACCESS_KEY_ID (not the .env.example placeholder)"
                    .to_owned(),
                got: None,
            });
        }
        (None, Some(_)) => {
            return Err(ConfigError {
                var: "AWS_ACCESS_KEY_ID",
                expected: "the key id AWS_SECRET_ACCESS_KEY belongs to".to_owned(),
                got: None,
            });
        }
        (None, None) => {}
    }
    let Some(file) = env.get("AWS_SHARED_CREDENTIALS_FILE") else {
        return Ok(None);
    };
    let profile = env.get("AWS_PROFILE").unwrap_or("default");
    let bad = |expected: String| ConfigError {
        var: "AWS_SHARED_CREDENTIALS_FILE",
        expected,
        got: Some(file.to_owned()),
    };
    let text = std::fs::read_to_string(PathBuf::from(file))
        .map_err(|e| bad(format!("a readable AWS credentials file ({e})")))?;
    parse_credentials_file(&text, profile).map(Some).ok_or_else(|| {
        bad(format!(
            "an AWS credentials file with aws_access_key_id and aws_secret_access_key in [{profile}] (AWS_PROFILE)"
        ))
    })
}

/// The keys of `[profile]` in an AWS credentials file (INI).
fn parse_credentials_file(text: &str, profile: &str) -> Option<StaticCredentials> {
    let mut section = String::new();
    let (mut id, mut secret, mut token) = (None, None, None);
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = name.trim().to_owned();
            continue;
        }
        if section != profile {
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        let value = value.trim().to_owned();
        match key.trim() {
            "aws_access_key_id" => id = Some(value),
            "aws_secret_access_key" => secret = Some(SecretString::from(value)),
            "aws_session_token" => token = Some(SecretString::from(value)),
            _ => {}
        }
    }
    Some(StaticCredentials {
        access_key_id: id.filter(|id| !id.is_empty())?,
        secret_access_key: secret?,
        session_token: token,
    })
}

/// A multipart upload started and never completed nor aborted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IncompleteUpload {
    /// The object's full path in the bucket.
    pub path: String,
    pub upload_id: String,
    pub initiated: DateTime<Utc>,
}

/// The key and upload-id markers of a listing's next page.
pub(crate) type NextPage = Option<(String, String)>;

/// Parses a ListMultipartUploads answer; returns the uploads and, when the
/// listing is truncated, the markers of the next page.
pub(crate) fn parse_uploads(xml: &str) -> Result<(Vec<IncompleteUpload>, NextPage), String> {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Listing {
        #[serde(default)]
        upload: Vec<Upload>,
        #[serde(default)]
        is_truncated: bool,
        next_key_marker: Option<String>,
        next_upload_id_marker: Option<String>,
    }
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Upload {
        key: String,
        upload_id: String,
        initiated: DateTime<Utc>,
    }
    let listing: Listing = quick_xml::de::from_str(xml).map_err(|e| e.to_string())?;
    let next = match (
        listing.is_truncated,
        listing.next_key_marker,
        listing.next_upload_id_marker,
    ) {
        (true, Some(key), upload) => Some((key, upload.unwrap_or_default())),
        _ => None,
    };
    let uploads = listing
        .upload
        .into_iter()
        .map(|u| IncompleteUpload {
            path: u.key,
            upload_id: u.upload_id,
            initiated: u.initiated,
        })
        .collect();
    Ok((uploads, next))
}

impl StaticCredentials {
    pub(crate) fn secret(&self) -> &str {
        self.secret_access_key.expose_secret()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_files_and_listings() {
        let text = "[other]\naws_access_key_id = A\naws_secret_access_key = B\n\n# c\n[backups]\naws_access_key_id=GK1\naws_secret_access_key = s3cr3t\n";
        let creds = parse_credentials_file(text, "backups").expect("the profile");
        assert_eq!(creds.access_key_id, "GK1");
        assert_eq!(creds.secret(), "s3cr3t");
        assert!(parse_credentials_file(text, "missing").is_none());

        let xml = r#"<?xml version="1.0" encoding="UTF-8"?>
<ListMultipartUploadsResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
<Bucket>b</Bucket><KeyMarker></KeyMarker><UploadIdMarker></UploadIdMarker>
<NextKeyMarker>p/t/b.zip</NextKeyMarker><NextUploadIdMarker>u2</NextUploadIdMarker>
<MaxUploads>1000</MaxUploads><IsTruncated>true</IsTruncated>
<Upload><Key>p/t/a.zip</Key><UploadId>u1</UploadId><Initiated>2026-01-02T03:04:05.000Z</Initiated><StorageClass>STANDARD</StorageClass></Upload>
<Upload><Key>p/t/b.zip</Key><UploadId>u2</UploadId><Initiated>2026-01-02T03:04:06Z</Initiated></Upload>
</ListMultipartUploadsResult>"#;
        let (uploads, next) = parse_uploads(xml).expect("parsed");
        assert_eq!(uploads.len(), 2);
        assert_eq!(uploads[0].path, "p/t/a.zip");
        assert_eq!(uploads[1].upload_id, "u2");
        assert_eq!(next, Some(("p/t/b.zip".to_owned(), "u2".to_owned())));
        let empty = "<ListMultipartUploadsResult><IsTruncated>false</IsTruncated></ListMultipartUploadsResult>";
        assert_eq!(parse_uploads(empty).expect("parsed").0, vec![]);
    }

    #[test]
    fn bucket_urls() {
        let mut options = S3Options {
            endpoint: Url::parse("http://127.0.0.1:3900").ok(),
            path_style: true,
            ..S3Options::default()
        };
        assert_eq!(
            options.bucket_url("b").map(String::from),
            Ok("http://127.0.0.1:3900/b".to_owned())
        );
        options.endpoint = None;
        options.path_style = false;
        assert_eq!(
            options.bucket_url("b").map(String::from),
            Ok("https://b.s3.us-east-1.amazonaws.com/".to_owned())
        );
    }
}
