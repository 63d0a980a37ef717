//! Opening a store from its URL, checking that it answers, and (for S3) the
//! multipart uploads object_store can abort but not list.

use std::sync::Arc;
use std::time::Duration;

use axum::http;
use object_store::aws::{AmazonS3, AmazonS3Builder, AmazonS3ConfigKey, AwsAuthorizer};
use object_store::client::HttpRequestBody;
use object_store::multipart::MultipartStore as _;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, RetryConfig};
use secrecy::ExposeSecret as _;
use url::Url;

use super::s3::{IncompleteUpload, S3Options, parse_uploads};

/// An opened store: every key lives below `prefix`.
#[derive(Clone, Debug)]
pub struct OpenedStore {
    pub store: Arc<dyn ObjectStore>,
    pub prefix: ObjectPath,
    /// The S3 client behind `store`, for what only S3 has.
    pub s3: Option<S3Client>,
    /// The URL it was opened from (no secret is ever in it).
    pub url: String,
}

impl OpenedStore {
    /// The full path of `key` (relative, no `..`); `None` when it is not one.
    pub fn path(&self, key: &str) -> Option<ObjectPath> {
        let key_path = ObjectPath::parse(key).ok()?;
        if key.is_empty() || key_path.parts().any(|p| p.as_ref() == "..") {
            return None;
        }
        Some(self.prefix.parts().chain(key_path.parts()).collect())
    }
}

/// Opens the store `url` names: a local directory (created if missing),
/// an S3 bucket with `options`, or `memory://` (tests).
pub fn open(url: &str, options: &S3Options) -> Result<OpenedStore, String> {
    let parsed = Url::parse(url).map_err(|e| e.to_string())?;
    let (store, prefix, s3): (Arc<dyn ObjectStore>, ObjectPath, Option<S3Client>) =
        match parsed.scheme() {
            "file" => {
                let dir = parsed
                    .to_file_path()
                    .map_err(|()| "file:// needs an absolute path".to_owned())?;
                std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
                let local = object_store::local::LocalFileSystem::new_with_prefix(&dir)
                    .map_err(|e| e.to_string())?
                    .with_automatic_cleanup(true);
                (Arc::new(local), ObjectPath::default(), None)
            }
            "memory" => (
                Arc::new(object_store::memory::InMemory::new()),
                ObjectPath::default(),
                None,
            ),
            "s3" => {
                let client = S3Client::build(&parsed, options)?;
                let prefix = ObjectPath::parse(parsed.path().trim_matches('/'))
                    .map_err(|e| e.to_string())?;
                (client.s3.clone(), prefix, Some(client))
            }
            other => return Err(format!("unsupported scheme {other:?}")),
        };
    Ok(OpenedStore {
        store,
        prefix,
        s3,
        url: url.to_owned(),
    })
}

/// Whether the store answers: lists one level below its prefix, within
/// `timeout`. For S3 that is the bucket answering with these credentials.
pub async fn check_answers(store: &OpenedStore, timeout: Duration) -> Result<(), String> {
    let prefix = (!store.prefix.as_ref().is_empty()).then_some(&store.prefix);
    match tokio::time::timeout(timeout, store.store.list_with_delimiter(prefix)).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(err)) => Err(crate::error_chain::chain(&err)),
        Err(_) => Err(format!("no answer within {timeout:?}")),
    }
}

/// An S3 bucket's client.
#[derive(Clone, Debug)]
pub struct S3Client {
    pub s3: Arc<AmazonS3>,
    bucket_url: Url,
    region: String,
    http: reqwest_s3::Client,
}

impl S3Client {
    fn build(url: &Url, options: &S3Options) -> Result<Self, String> {
        let bucket = url
            .host_str()
            .filter(|b| !b.is_empty())
            .ok_or("s3:// needs a bucket: s3://bucket/prefix")?;
        let mut builder = AmazonS3Builder::new();
        for (name, value) in &options.aws {
            if let Ok(key) = name.to_ascii_lowercase().parse::<AmazonS3ConfigKey>() {
                builder = builder.with_config(key, value.expose_secret());
            }
        }
        builder = builder
            .with_bucket_name(bucket)
            .with_region(&options.region)
            .with_virtual_hosted_style_request(!options.path_style)
            .with_retry(RetryConfig {
                retry_timeout: options.retry_timeout,
                ..RetryConfig::default()
            });
        if let Some(endpoint) = &options.endpoint {
            builder = builder
                .with_endpoint(endpoint.as_str().trim_end_matches('/'))
                .with_allow_http(endpoint.scheme() == "http");
        }
        if let Some(creds) = &options.credentials {
            builder = builder
                .with_access_key_id(&creds.access_key_id)
                .with_secret_access_key(creds.secret());
            if let Some(token) = &creds.session_token {
                builder = builder.with_token(token.expose_secret());
            }
        }
        let s3 = builder.build().map_err(|e| e.to_string())?;
        let http = reqwest_s3::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| e.to_string())?;
        Ok(Self {
            s3: Arc::new(s3),
            bucket_url: options.bucket_url(bucket)?,
            region: options.region.clone(),
            http,
        })
    }

    /// The multipart uploads below `prefix` (a full path in the bucket)
    /// that were never completed nor aborted: ListMultipartUploads, signed
    /// with the client's own credentials.
    pub async fn incomplete_uploads(&self, prefix: &str) -> Result<Vec<IncompleteUpload>, String> {
        let mut found = Vec::new();
        let mut marker: Option<(String, String)> = None;
        loop {
            let mut url = self.bucket_url.clone();
            {
                let mut query = url.query_pairs_mut();
                query.append_key_only("uploads");
                query.append_pair("prefix", prefix);
                if let Some((key, upload)) = &marker {
                    query.append_pair("key-marker", key);
                    query.append_pair("upload-id-marker", upload);
                }
            }
            let xml = self.signed_get(&url).await?;
            let (uploads, next) = parse_uploads(&xml)?;
            found.extend(uploads);
            match next {
                Some(next) if marker.as_ref() != Some(&next) => marker = Some(next),
                _ => return Ok(found),
            }
        }
    }

    /// Aborts an unfinished multipart upload (gone already is fine).
    pub async fn abort_upload(&self, upload: &IncompleteUpload) -> Result<(), String> {
        let path = ObjectPath::from(upload.path.as_str());
        match self.s3.abort_multipart(&path, &upload.upload_id).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(err) => Err(crate::error_chain::chain(&err)),
        }
    }

    async fn signed_get(&self, url: &Url) -> Result<String, String> {
        let credential = self
            .s3
            .credentials()
            .get_credential()
            .await
            .map_err(|e| crate::error_chain::chain(&e))?;
        let mut request = http::Request::builder()
            .method(http::Method::GET)
            .uri(url.as_str())
            .body(HttpRequestBody::empty())
            .map_err(|e| e.to_string())?;
        AwsAuthorizer::new(&credential, "s3", &self.region)
            .try_authorize(&mut request, None)
            .map_err(|e| e.to_string())?;
        let response = self
            .http
            .get(url.as_str())
            .headers(request.headers().clone())
            .send()
            .await
            .map_err(|e| crate::error_chain::chain(&e))?;
        let status = response.status();
        let body = response
            .text()
            .await
            .map_err(|e| crate::error_chain::chain(&e))?;
        if !status.is_success() {
            return Err(format!(
                "ListMultipartUploads answered {status}: {}",
                body.chars().take(300).collect::<String>()
            ));
        }
        Ok(body)
    }
}

/// Keeps the `backup_store` component of `/readyz` current: every store
/// (the primary, the replica) must answer; checked every 15 s (every 5 s
/// while one does not), each reason naming the variable of its store.
pub fn watch_readiness(
    component: crate::readiness::Component,
    stores: Vec<(super::StoreRole, OpenedStore)>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            let mut down = Vec::new();
            for (role, store) in &stores {
                if let Err(reason) = check_answers(store, Duration::from_secs(5)).await {
                    down.push(format!(
                        "{} ({}) does not answer: {reason}",
                        role.var(),
                        store.url
                    ));
                }
            }
            let pause = if down.is_empty() {
                component.set_up();
                Duration::from_secs(15)
            } else {
                component.set_down(down.join("; "));
                Duration::from_secs(5)
            };
            tokio::time::sleep(pause).await;
        }
    })
}
