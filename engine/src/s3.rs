//! S3 connections: the standard AWS environment variables, the shared `~/.aws` profile
//! files, and custom endpoints for S3-compatible servers.

use crate::store::S3Options;
use anyhow::{Context, Result};
use object_store::aws::{AmazonS3, AmazonS3Builder, AmazonS3ConfigKey};
use object_store::{BackoffConfig, ClientOptions, RetryConfig};
use std::collections::HashMap;
use std::time::Duration;

/// Builds a client for `bucket`. Settings, in increasing precedence: the profile named by
/// `AWS_PROFILE` (default `default`) in `~/.aws/credentials` and `~/.aws/config`, the
/// `AWS_*` environment variables, then `opts`.
pub fn build(bucket: &str, opts: &S3Options) -> Result<AmazonS3> {
    let mut b = AmazonS3Builder::new();
    for (k, v) in profile_settings() {
        if let Ok(key) = k.parse::<AmazonS3ConfigKey>() {
            b = b.with_config(key, v);
        }
    }
    for (k, v) in std::env::vars() {
        if k.starts_with("AWS_") {
            if let Ok(key) = k.to_ascii_lowercase().parse::<AmazonS3ConfigKey>() {
                b = b.with_config(key, v);
            }
        }
    }
    let endpoint = opts
        .endpoint
        .clone()
        .or_else(|| std::env::var("AWS_ENDPOINT_URL_S3").ok())
        .or_else(|| std::env::var("AWS_ENDPOINT_URL").ok());
    let mut client = ClientOptions::new()
        .with_connect_timeout(Duration::from_secs(5))
        .with_timeout(Duration::from_secs(300));
    if std::env::var("AWS_ALLOW_HTTP").is_ok_and(|v| v.eq_ignore_ascii_case("true")) {
        client = client.with_allow_http(true);
    }
    if let Some(ep) = endpoint {
        if ep.starts_with("http://") {
            client = client.with_allow_http(true);
        }
        b = b.with_endpoint(ep).with_virtual_hosted_style_request(false);
    }
    if std::env::var("AWS_REGION").is_err() && std::env::var("AWS_DEFAULT_REGION").is_err() {
        b = b.with_region("us-east-1");
    }
    let retries: usize = std::env::var("ZEST_S3_MAX_RETRIES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    b = b
        .with_bucket_name(bucket)
        .with_retry(RetryConfig {
            backoff: BackoffConfig {
                init_backoff: Duration::from_millis(100),
                max_backoff: Duration::from_secs(5),
                base: 2.0,
            },
            max_retries: retries,
            retry_timeout: Duration::from_secs(60),
        })
        .with_client_options(client);
    b.build()
        .with_context(|| format!("cannot configure S3 access to bucket `{bucket}`"))
}

/// Reads `aws_access_key_id`, `aws_secret_access_key`, `aws_session_token`, `region` and
/// `endpoint_url` for the current profile from the shared AWS files.
fn profile_settings() -> HashMap<String, String> {
    let mut out = HashMap::new();
    let Some(home) = std::env::var_os("HOME") else {
        return out;
    };
    let home = std::path::PathBuf::from(home);
    let profile = std::env::var("AWS_PROFILE").unwrap_or_else(|_| "default".into());
    let config = std::env::var_os("AWS_CONFIG_FILE")
        .map(Into::into)
        .unwrap_or_else(|| home.join(".aws/config"));
    let creds = std::env::var_os("AWS_SHARED_CREDENTIALS_FILE")
        .map(Into::into)
        .unwrap_or_else(|| home.join(".aws/credentials"));
    let config_section = if profile == "default" {
        "default".to_string()
    } else {
        format!("profile {profile}")
    };
    for (file, section) in [(config, config_section), (creds, profile)] {
        if let Ok(text) = std::fs::read_to_string(&file) {
            for (k, v) in ini_section(&text, &section) {
                let key = match k.as_str() {
                    "aws_access_key_id" | "aws_secret_access_key" | "aws_session_token" => k,
                    "region" => "aws_region".into(),
                    "endpoint_url" => "aws_endpoint".into(),
                    _ => continue,
                };
                out.insert(key, v);
            }
        }
    }
    out
}

fn ini_section(text: &str, section: &str) -> Vec<(String, String)> {
    let mut inside = false;
    let mut out = vec![];
    for line in text.lines() {
        let l = line.trim();
        if l.starts_with('#') || l.starts_with(';') || l.is_empty() {
            continue;
        }
        if let Some(name) = l.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
            inside = name.trim() == section;
        } else if inside {
            if let Some((k, v)) = l.split_once('=') {
                out.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_named_ini_section() {
        let text = "[default]\nregion = eu-west-1\n[profile lab]\nregion=us-east-2\nendpoint_url = http://x:1\n";
        let v = super::ini_section(text, "profile lab");
        assert_eq!(
            v,
            vec![
                ("region".into(), "us-east-2".into()),
                ("endpoint_url".into(), "http://x:1".into())
            ]
        );
    }
}
