//! Where finished recordings live: a local folder (the embedded default) or any S3-compatible
//! object store through `aws-sdk-s3` (endpoint, region, bucket, prefix, path-style, static
//! credentials, optional server-side encryption). Large files go up in parts (multipart upload);
//! every request carries `Content-MD5`, so the store itself rejects a corrupted body, and the
//! object is checked afterwards (size, and the SHA-256 kept in its metadata).

use std::path::{Path, PathBuf};
use std::time::Duration;

use aws_sdk_s3::config::{
    BehaviorVersion, Credentials, Region, RequestChecksumCalculation, ResponseChecksumValidation,
};
use aws_sdk_s3::error::DisplayErrorContext;
use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart, ServerSideEncryption};
use base64::Engine;
use md5::{Digest, Md5};
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;
use tokio::io::AsyncReadExt;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("object store: {0}")]
    S3(String),
    #[error("object {key} does not match after upload: {detail}")]
    Mismatch { key: String, detail: String },
    #[error("invalid object key {0:?}")]
    BadKey(String),
}

/// S3 connection settings.
#[derive(Debug, Clone)]
pub struct S3Settings {
    /// `https://storage.yandexcloud.net`, `http://127.0.0.1:8333`, … (empty: AWS).
    pub endpoint: Option<String>,
    pub region: String,
    pub bucket: String,
    /// Prepended to every key (e.g. `vizit/`).
    pub prefix: String,
    /// `https://endpoint/bucket/key` instead of `https://bucket.endpoint/key`.
    pub path_style: bool,
    pub access_key_id: String,
    pub secret_access_key: SecretString,
    /// `AES256` or `aws:kms`; none by default.
    pub server_side_encryption: Option<String>,
    /// Files larger than this go up in parts of this size (S3's minimum part is 5 MiB).
    pub part_size: usize,
}

pub struct S3Store {
    client: aws_sdk_s3::Client,
    settings: S3Settings,
}

/// Facts of an object in the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    pub size: u64,
    pub sha256: Option<String>,
}

/// A file to put: its size and digests were taken when it entered the spool.
#[derive(Debug, Clone)]
pub struct Upload<'a> {
    pub key: &'a str,
    pub path: &'a Path,
    pub size: u64,
    pub sha256: &'a str,
    pub content_type: &'a str,
}

pub enum ObjectStore {
    Local { root: PathBuf },
    S3(Box<S3Store>),
}

/// Keys are made by Vizit (`recordings/<consultation>/<id>.webm`); anything that could climb out
/// of the folder or the prefix is refused.
fn check_key(key: &str) -> Result<(), StoreError> {
    if key.is_empty()
        || key.starts_with('/')
        || key
            .split('/')
            .any(|p| p.is_empty() || p == "." || p == "..")
        || key.contains('\\')
    {
        return Err(StoreError::BadKey(key.to_owned()));
    }
    Ok(())
}

fn s3_err<E: std::error::Error + 'static>(e: E) -> StoreError {
    StoreError::S3(DisplayErrorContext(&e).to_string())
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

impl ObjectStore {
    pub fn local(root: impl Into<PathBuf>) -> ObjectStore {
        ObjectStore::Local { root: root.into() }
    }

    pub fn s3(settings: S3Settings) -> ObjectStore {
        let mut config = aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(settings.region.clone()))
            .force_path_style(settings.path_style)
            .credentials_provider(Credentials::new(
                settings.access_key_id.clone(),
                settings.secret_access_key.expose_secret().to_owned(),
                None,
                None,
                "vizit-config",
            ))
            // S3-compatible stores vary in which flexible checksums they accept; Content-MD5 is
            // understood by all of them.
            .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
            .response_checksum_validation(ResponseChecksumValidation::WhenRequired)
            .timeout_config(
                aws_sdk_s3::config::timeout::TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(5))
                    .operation_attempt_timeout(Duration::from_secs(120))
                    .build(),
            );
        if let Some(endpoint) = &settings.endpoint {
            config = config.endpoint_url(endpoint);
        }
        ObjectStore::S3(Box::new(S3Store {
            client: aws_sdk_s3::Client::from_conf(config.build()),
            settings,
        }))
    }

    /// The S3 client (tests create buckets with it).
    pub fn s3_client(&self) -> Option<&aws_sdk_s3::Client> {
        match self {
            ObjectStore::S3(s) => Some(&s.client),
            ObjectStore::Local { .. } => None,
        }
    }

    /// Put a file under `key`, then check the stored object.
    pub async fn put(&self, up: &Upload<'_>) -> Result<(), StoreError> {
        check_key(up.key)?;
        match self {
            ObjectStore::Local { root } => {
                let target = root.join(up.key);
                if let Some(parent) = target.parent() {
                    tokio::fs::create_dir_all(parent).await?;
                }
                let partial = target.with_extension("partial");
                tokio::fs::copy(up.path, &partial).await?;
                tokio::fs::File::open(&partial).await?.sync_all().await?;
                tokio::fs::rename(&partial, &target).await?;
            }
            ObjectStore::S3(s3) => s3.put(up).await?,
        }
        let info = self
            .head(up.key)
            .await?
            .ok_or_else(|| StoreError::Mismatch {
                key: up.key.to_owned(),
                detail: "missing after upload".into(),
            })?;
        if info.size != up.size {
            return Err(StoreError::Mismatch {
                key: up.key.to_owned(),
                detail: format!("{} bytes stored, {} sent", info.size, up.size),
            });
        }
        if info.sha256.as_deref().is_some_and(|s| s != up.sha256) {
            return Err(StoreError::Mismatch {
                key: up.key.to_owned(),
                detail: "SHA-256 differs".into(),
            });
        }
        Ok(())
    }

    /// Size and SHA-256 of an object; `None` if absent. (A local file is hashed.)
    pub async fn head(&self, key: &str) -> Result<Option<ObjectInfo>, StoreError> {
        check_key(key)?;
        match self {
            ObjectStore::Local { root } => match tokio::fs::metadata(root.join(key)).await {
                Ok(m) => Ok(Some(ObjectInfo {
                    size: m.len(),
                    sha256: Some(digests(&root.join(key)).await?.0),
                })),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(e.into()),
            },
            ObjectStore::S3(s3) => s3.head(key).await,
        }
    }

    /// The whole of a small object (a chat's file); `None` if absent.
    pub async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        check_key(key)?;
        match self {
            ObjectStore::Local { root } => match tokio::fs::read(root.join(key)).await {
                Ok(bytes) => Ok(Some(bytes)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(e.into()),
            },
            ObjectStore::S3(s3) => {
                let got = s3
                    .client
                    .get_object()
                    .bucket(&s3.settings.bucket)
                    .key(s3.full_key(key))
                    .send()
                    .await;
                let out = match got {
                    Ok(out) => out,
                    Err(e) if e.as_service_error().is_some_and(|e| e.is_no_such_key()) => {
                        return Ok(None);
                    }
                    Err(e) => return Err(s3_err(e)),
                };
                let bytes = out.body.collect().await.map_err(s3_err)?;
                Ok(Some(bytes.into_bytes().to_vec()))
            }
        }
    }

    /// Delete an object (absent is fine).
    pub async fn delete(&self, key: &str) -> Result<(), StoreError> {
        check_key(key)?;
        match self {
            ObjectStore::Local { root } => match tokio::fs::remove_file(root.join(key)).await {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(e.into()),
            },
            ObjectStore::S3(s3) => {
                s3.client
                    .delete_object()
                    .bucket(&s3.settings.bucket)
                    .key(s3.full_key(key))
                    .send()
                    .await
                    .map_err(s3_err)?;
                Ok(())
            }
        }
    }

    /// A short-lived URL that downloads the object (S3), or `None` for a local folder (stream
    /// it from [`ObjectStore::local_path`]).
    pub async fn presigned_url(
        &self,
        key: &str,
        ttl: Duration,
        filename: &str,
    ) -> Result<Option<String>, StoreError> {
        check_key(key)?;
        match self {
            ObjectStore::Local { .. } => Ok(None),
            ObjectStore::S3(s3) => {
                let config = PresigningConfig::expires_in(ttl).map_err(s3_err)?;
                let safe: String = filename
                    .chars()
                    .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
                    .collect();
                let req = s3
                    .client
                    .get_object()
                    .bucket(&s3.settings.bucket)
                    .key(s3.full_key(key))
                    .response_content_disposition(format!("attachment; filename=\"{safe}\""))
                    .presigned(config)
                    .await
                    .map_err(s3_err)?;
                Ok(Some(req.uri().to_string()))
            }
        }
    }

    /// The file of a local-folder object.
    pub fn local_path(&self, key: &str) -> Option<PathBuf> {
        match self {
            ObjectStore::Local { root } if check_key(key).is_ok() => Some(root.join(key)),
            _ => None,
        }
    }

    pub fn describe(&self) -> String {
        match self {
            ObjectStore::Local { root } => format!("local folder {}", root.display()),
            ObjectStore::S3(s3) => format!(
                "S3 bucket {} at {}",
                s3.settings.bucket,
                s3.settings.endpoint.as_deref().unwrap_or("AWS")
            ),
        }
    }
}

impl S3Store {
    /// The object key under the prefix; the prefix is a folder (`clinic-1` and `clinic-1/` alike).
    fn full_key(&self, key: &str) -> String {
        let prefix = self.settings.prefix.trim_end_matches('/');
        if prefix.is_empty() {
            key.to_owned()
        } else {
            format!("{prefix}/{key}")
        }
    }

    fn sse(&self) -> Option<ServerSideEncryption> {
        self.settings
            .server_side_encryption
            .as_deref()
            .map(ServerSideEncryption::from)
    }

    async fn head(&self, key: &str) -> Result<Option<ObjectInfo>, StoreError> {
        match self
            .client
            .head_object()
            .bucket(&self.settings.bucket)
            .key(self.full_key(key))
            .send()
            .await
        {
            Ok(h) => Ok(Some(ObjectInfo {
                size: h.content_length().unwrap_or(0).max(0) as u64,
                sha256: h.metadata().and_then(|m| m.get("sha256").cloned()),
            })),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_not_found()) => Ok(None),
            Err(e) => Err(s3_err(e)),
        }
    }

    async fn put(&self, up: &Upload<'_>) -> Result<(), StoreError> {
        let key = self.full_key(up.key);
        let part = self.settings.part_size.max(5 * 1024 * 1024);
        if (up.size as usize) <= part {
            let body = tokio::fs::read(up.path).await?;
            let md5 = b64(&Md5::digest(&body));
            self.client
                .put_object()
                .bucket(&self.settings.bucket)
                .key(&key)
                .content_type(up.content_type)
                .content_md5(md5)
                .metadata("sha256", up.sha256)
                .set_server_side_encryption(self.sse())
                .body(ByteStream::from(body))
                .send()
                .await
                .map_err(s3_err)?;
            return Ok(());
        }
        let created = self
            .client
            .create_multipart_upload()
            .bucket(&self.settings.bucket)
            .key(&key)
            .content_type(up.content_type)
            .metadata("sha256", up.sha256)
            .set_server_side_encryption(self.sse())
            .send()
            .await
            .map_err(s3_err)?;
        let upload_id = created
            .upload_id()
            .ok_or_else(|| StoreError::S3("no upload id in CreateMultipartUpload".into()))?
            .to_owned();
        match self.parts(&key, &upload_id, up.path, part).await {
            Ok(()) => Ok(()),
            Err(e) => {
                // Do not leave parts billed and dangling; the next attempt starts afresh.
                let _ = self
                    .client
                    .abort_multipart_upload()
                    .bucket(&self.settings.bucket)
                    .key(&key)
                    .upload_id(&upload_id)
                    .send()
                    .await;
                Err(e)
            }
        }
    }

    async fn parts(
        &self,
        key: &str,
        upload_id: &str,
        path: &Path,
        part: usize,
    ) -> Result<(), StoreError> {
        let mut file = tokio::fs::File::open(path).await?;
        let mut parts = Vec::new();
        let mut number = 0;
        loop {
            let mut chunk = Vec::with_capacity(part);
            (&mut file)
                .take(part as u64)
                .read_to_end(&mut chunk)
                .await?;
            if chunk.is_empty() {
                break;
            }
            number += 1;
            let md5 = b64(&Md5::digest(&chunk));
            let done = self
                .client
                .upload_part()
                .bucket(&self.settings.bucket)
                .key(key)
                .upload_id(upload_id)
                .part_number(number)
                .content_md5(md5)
                .body(ByteStream::from(chunk))
                .send()
                .await
                .map_err(s3_err)?;
            parts.push(
                CompletedPart::builder()
                    .part_number(number)
                    .set_e_tag(done.e_tag().map(str::to_owned))
                    .build(),
            );
        }
        self.client
            .complete_multipart_upload()
            .bucket(&self.settings.bucket)
            .key(key)
            .upload_id(upload_id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(parts))
                    .build(),
            )
            .send()
            .await
            .map_err(s3_err)?;
        Ok(())
    }
}

/// SHA-256 (hex) and size of a file, read in 1 MiB blocks.
pub async fn digests(path: &Path) -> Result<(String, u64), std::io::Error> {
    let mut file = tokio::fs::File::open(path).await?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let n = file.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        size += n as u64;
        hasher.update(&buf[..n]);
    }
    Ok((hex::encode(hasher.finalize()), size))
}
