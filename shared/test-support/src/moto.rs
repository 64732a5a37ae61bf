//! Moto plumbing: a fresh DynamoDB table per test, built from the
//! `CashbackTable` definition in template.yaml; SDK configs for moto's SES
//! and SSM; what moto recorded of the emails sent.
//!
//! `MOTO_ENDPOINT` (e.g. `http://127.0.0.1:5123`, exported by
//! `infra/moto.sh`) says where moto's server listens. Without it the
//! DynamoDB tests skip with a notice, unless `REQUIRE_MOTO=1` (as
//! infra/test.sh sets), where a skipped test would hide a failure: then
//! they panic. Each test gets its own small table, because moto copies a
//! table on every transaction and tests run in parallel.
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicU32, Ordering};

use aws_sdk_dynamodb::config::{BehaviorVersion, Credentials, Region};
use cashback_store::DynamoStore;

/// Where the table is defined, once.
pub const TEMPLATE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../template.yaml");

/// The moto endpoint, None (with a notice) when the tests should skip.
pub fn endpoint(test_name: &str) -> Option<String> {
    match std::env::var("MOTO_ENDPOINT") {
        Ok(url) if !url.trim().is_empty() => Some(url.trim().trim_end_matches('/').to_string()),
        _ => {
            if std::env::var("REQUIRE_MOTO").as_deref() == Ok("1") {
                panic!("moto is required (REQUIRE_MOTO=1) but MOTO_ENDPOINT is not set");
            }
            eprintln!(
                "skipping {test_name}: MOTO_ENDPOINT is not set (source infra/moto.sh && moto_start)"
            );
            None
        }
    }
}

/// An AWS config for moto: fake static credentials, us-east-1.
pub async fn sdk_config() -> aws_config::SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("testing", "testing", None, None, "moto"))
        .load()
        .await
}

/// [`sdk_config`] with every client's requests going to `endpoint` (SSM).
pub async fn sdk_config_at(endpoint: &str) -> aws_config::SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("testing", "testing", None, None, "moto"))
        .endpoint_url(endpoint)
        .load()
        .await
}

/// `Resources` of template.yaml, as JSON: each CloudFormation tag
/// (`!Ref x`) becomes a one-entry map (`{"!Ref": "x"}`), as serde sees a
/// tagged value.
pub fn template_resources() -> serde_json::Value {
    let text = std::fs::read_to_string(TEMPLATE).expect("template.yaml is readable");
    let template: serde_norway::Value =
        serde_norway::from_str(&text).expect("template.yaml parses");
    let resources = template
        .get("Resources")
        .expect("template.yaml defines Resources");
    serde_json::to_value(resources).expect("the resources are plain data")
}

/// `Resources.CashbackTable.Properties` of template.yaml, as JSON. The
/// template's CloudFormation tags (`!Ref` ...) parse as tagged values and
/// are never looked at: only this subtree is converted.
pub fn table_properties() -> serde_json::Value {
    let text = std::fs::read_to_string(TEMPLATE).expect("template.yaml is readable");
    let template: serde_norway::Value =
        serde_norway::from_str(&text).expect("template.yaml parses");
    let properties = template
        .get("Resources")
        .and_then(|r| r.get("CashbackTable"))
        .and_then(|t| t.get("Properties"))
        .expect("template.yaml defines Resources.CashbackTable.Properties");
    serde_json::to_value(properties).expect("the table properties are plain data")
}

/// A table name no other test (nor another run on the same moto) uses.
pub fn unique_table_name(test_name: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let clean: String = test_name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .take(150)
        .collect();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!(
        "cashback-{clean}-{}-{nanos}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// A store on a NEW table (from template.yaml) in moto, or None when moto
/// is not configured (see the module doc).
pub async fn fresh_store(test_name: &str) -> Option<DynamoStore> {
    let endpoint = endpoint(test_name)?;
    Some(store_on(&endpoint, test_name).await)
}

/// A store on a NEW table in the moto at `endpoint`.
pub async fn store_on(endpoint: &str, test_name: &str) -> DynamoStore {
    let sdk = sdk_config().await;
    let table = unique_table_name(test_name);
    // Created with a client of its own, so the store's round-trip counts
    // start at zero.
    let admin = aws_sdk_dynamodb::Client::from_conf(
        aws_sdk_dynamodb::config::Builder::from(&sdk)
            .endpoint_url(endpoint)
            .build(),
    );
    cashback_store::dynamo::schema::create_table(&admin, &table, &table_properties())
        .await
        .unwrap_or_else(|e| panic!("creating table {table} in moto at {endpoint}: {e}"));
    DynamoStore::from_sdk_config(&sdk, table, Some(endpoint))
}

/// Serves one request at a time: moto's own server is threaded, and its
/// TransactWriteItems is not atomic under concurrent requests (a cancelled
/// transaction rolls the table back to a copy taken when it started,
/// erasing transactions committed meanwhile, so a committed write can be
/// lost). DynamoDB serialises the writes to an item; one request at a time
/// is the faithful emulation of that.
const SERIAL_MOTO: &str = "\
import sys
from werkzeug.serving import run_simple
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
run_simple('127.0.0.1', int(sys.argv[1]), DomainDispatcherApplication(create_backend_app), threaded=False)
";

/// A private moto server that handles requests one at a time, for the
/// concurrency tests; stopped when dropped. Started only where moto is
/// configured (`MOTO_ENDPOINT`), with the same python (`MOTO_PYTHON`,
/// python3 by default).
pub struct SerialMoto {
    child: std::process::Child,
    pub endpoint: String,
}

impl Drop for SerialMoto {
    fn drop(&mut self) {
        // Our own child, by its handle: nothing else is touched.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub async fn serial_moto(test_name: &str) -> Option<SerialMoto> {
    endpoint(test_name)?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port();
    let python = std::env::var("MOTO_PYTHON").unwrap_or_else(|_| "python3".into());
    let child = std::process::Command::new(&python)
        .args(["-c", SERIAL_MOTO, &port.to_string()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("starting a serial moto with {python}: {e}"));
    let moto = SerialMoto {
        child,
        endpoint: format!("http://127.0.0.1:{port}"),
    };
    for _ in 0..200 {
        let address = std::net::SocketAddr::from(([127, 0, 0, 1], port));
        if std::net::TcpStream::connect_timeout(&address, std::time::Duration::from_millis(100))
            .is_ok()
        {
            return Some(moto);
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("the serial moto did not listen on port {port} in 20 s");
}

/// An SES notifier on moto with a freshly verified sender.
pub async fn ses_on_moto(endpoint: &str) -> (cashback_mail::SesNotifier, String) {
    let sdk = sdk_config().await;
    let from = unique_sender("rewards");
    let email = cashback_core::ids::Email::parse(&from).expect("a valid sender address");
    let mut config = cashback_mail::SesConfig::new(email);
    config.endpoint_url = Some(endpoint.to_string());
    let notifier = cashback_mail::SesNotifier::from_sdk_config(&sdk, config);
    notifier
        .client()
        .create_email_identity()
        .email_identity(&from)
        .send()
        .await
        .expect("moto verifies the sender identity");
    (notifier, from)
}

/// A sender address unique to this run, so a moto shared by several test
/// runs never finds one already verified (or not) by another.
pub fn unique_sender(label: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!(
        "{label}-{}-{nanos}@mail.demo.example.com",
        std::process::id()
    )
}

/// What moto recorded of raw SES sends from `from`: (destinations, raw MIME).
pub async fn ses_messages(endpoint: &str, from: &str) -> Vec<(Vec<String>, String)> {
    data(endpoint).await["ses"]["RawMessage"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .filter(|message| message["source"] == from)
        .map(|message| {
            let to = message["destinations"]
                .as_array()
                .map(|all| {
                    all.iter()
                        .filter_map(|d| d.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default();
            (
                to,
                message["raw_data"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

/// Everything moto holds (`GET /moto-api/data.json`): the SES messages are
/// under `["ses"]["RawMessage"]`, with their id, source, destinations and
/// raw MIME text.
pub async fn data(endpoint: &str) -> serde_json::Value {
    let endpoint = endpoint.to_string();
    tokio::task::spawn_blocking(move || get_json(&endpoint, "/moto-api/data.json"))
        .await
        .expect("the moto read finished")
}

/// `GET {endpoint}{path}` over plain HTTP/1.0 (moto on loopback), as JSON.
/// Creates the S3 bucket `name` on moto (a plain unsigned PUT: moto's
/// server takes it as S3's CreateBucket), for the table's exports.
pub async fn create_bucket(endpoint: &str, name: &str) {
    let (endpoint, path) = (endpoint.to_string(), format!("/{name}"));
    let (head, _) = tokio::task::spawn_blocking(move || raw(&endpoint, "PUT", &path, "", ""))
        .await
        .expect("the moto request finished");
    assert!(head.contains(" 200 "), "CreateBucket on moto: {head}");
}

/// The keys of the objects in moto's S3 bucket `name` (ListObjects, the
/// first 1,000).
pub async fn bucket_keys(endpoint: &str, name: &str) -> Vec<String> {
    let (endpoint, path) = (endpoint.to_string(), format!("/{name}"));
    let (head, body) = tokio::task::spawn_blocking(move || raw(&endpoint, "GET", &path, "", ""))
        .await
        .expect("the moto request finished");
    assert!(head.contains(" 200 "), "ListObjects on moto: {head}");
    body.split("<Key>")
        .skip(1)
        .filter_map(|rest| rest.split_once("</Key>").map(|(key, _)| key.to_string()))
        .collect()
}

/// One HTTP/1.0 request to moto, with extra header lines (each ending in
/// CRLF) and a body: (status line and headers, body).
fn raw(endpoint: &str, method: &str, path: &str, headers: &str, body: &str) -> (String, String) {
    let authority = endpoint
        .strip_prefix("http://")
        .expect("MOTO_ENDPOINT is an http:// URL")
        .split('/')
        .next()
        .unwrap_or_default()
        .to_string();
    let mut stream = TcpStream::connect(&authority).expect("connect to moto");
    write!(
        stream,
        "{method} {path} HTTP/1.0\r\nHost: {authority}\r\n{headers}Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .expect("a request to moto");
    let mut response = Vec::new();
    stream
        .read_to_end(&mut response)
        .expect("an answer from moto");
    let response = String::from_utf8(response).expect("a UTF-8 response");
    let (head, body) = response.split_once("\r\n\r\n").expect("an HTTP response");
    (head.to_string(), body.to_string())
}

fn get_json(endpoint: &str, path: &str) -> serde_json::Value {
    let (head, body) = raw(endpoint, "GET", path, "Accept: application/json\r\n", "");
    assert!(
        head.starts_with("HTTP/1.") && head.contains(" 200 "),
        "{head}"
    );
    serde_json::from_str(&body).expect("JSON from moto")
}

/// Every record moto's stream holds for `table`, from the start of each of
/// its shards, as one Lambda stream event (the shape the report aggregator
/// receives). Reading from the start every time is safe for a consumer
/// that adds each change once, and is what the tests check.
pub async fn stream_event(endpoint: &str, table: &str) -> aws_lambda_events::dynamodb::Event {
    let endpoint = endpoint.to_string();
    let table = table.to_string();
    tokio::task::spawn_blocking(move || {
        let described = post_json(
            &endpoint,
            "DynamoDB_20120810.DescribeTable",
            &serde_json::json!({ "TableName": table }),
        );
        let arn = described["Table"]["LatestStreamArn"]
            .as_str()
            .expect("the table has a stream (template.yaml's StreamSpecification)")
            .to_string();
        let stream = post_json(
            &endpoint,
            "DynamoDBStreams_20120810.DescribeStream",
            &serde_json::json!({ "StreamArn": arn }),
        );
        let mut records = Vec::new();
        let shards = stream["StreamDescription"]["Shards"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        for shard in shards {
            let iterator = post_json(
                &endpoint,
                "DynamoDBStreams_20120810.GetShardIterator",
                &serde_json::json!({
                    "StreamArn": arn,
                    "ShardId": shard["ShardId"],
                    "ShardIteratorType": "TRIM_HORIZON",
                }),
            );
            let mut iterator = iterator["ShardIterator"].clone();
            while iterator.is_string() {
                let page = post_json(
                    &endpoint,
                    "DynamoDBStreams_20120810.GetRecords",
                    &serde_json::json!({ "ShardIterator": iterator, "Limit": 1000 }),
                );
                let got = page["Records"].as_array().cloned().unwrap_or_default();
                if got.is_empty() {
                    break;
                }
                records.extend(got);
                iterator = page["NextShardIterator"].clone();
            }
        }
        serde_json::from_value(serde_json::json!({ "Records": records }))
            .expect("moto's stream records read as a Lambda stream event")
    })
    .await
    .expect("the moto stream read finished")
}

/// A JSON API call to moto (`X-Amz-Target`), over plain HTTP/1.0.
fn post_json(endpoint: &str, target: &str, body: &serde_json::Value) -> serde_json::Value {
    let headers = format!(
        "X-Amz-Target: {target}\r\n\
         Content-Type: application/x-amz-json-1.0\r\n\
         Authorization: AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/dynamodb/aws4_request, SignedHeaders=host, Signature=0\r\n"
    );
    let (head, body) = raw(endpoint, "POST", "/", &headers, &body.to_string());
    assert!(
        head.starts_with("HTTP/1.") && head.contains(" 200 "),
        "{target}: {head}\n{body}"
    );
    serde_json::from_str(&body).expect("JSON from moto")
}
