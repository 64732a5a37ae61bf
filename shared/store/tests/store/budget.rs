//! The write budget of DESIGN.md section 7, measured on the requests this
//! adapter sends (moto, when `MOTO_ENDPOINT` is set): a plain credited
//! order's TransactWriteItems, recorded by an SDK interceptor on the
//! store's client, is at most 4 items, each under 1 KB, at most 8 WCU; a
//! refund's reads and transaction are counted too. Sizes follow DynamoDB's
//! rules (`cashback_store::dynamo::size`): a Put is sized on the item it
//! sends, an Update on the item before and after it (the larger counts).
//! Report aggregates are left out of the count: they leave the write path
//! (summed off a stream), and are listed apart until they do.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsInput;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::BeforeSerializationInterceptorContextRef;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_types::config_bag::ConfigBag;

use cashback_app::events::handle_order_event;
use cashback_app::store::Store;
use cashback_core::ids::*;
use cashback_core::order::*;
use cashback_store::dynamo::size::{item_size, write_units};
use cashback_store::DynamoStore;
use cashback_test_support::doubles::Silent;
use cashback_test_support::fixtures::{shop, t0, usd};
use cashback_test_support::jobs::context;
use cashback_test_support::moto;

use crate::bounded::paid;

type Item = HashMap<String, AttributeValue>;

/// Keeps every TransactWriteItems the client is asked to send.
#[derive(Debug, Clone, Default)]
struct Recorder(Arc<Mutex<Vec<TransactWriteItemsInput>>>);

impl Recorder {
    fn take(&self) -> Vec<TransactWriteItemsInput> {
        self.0
            .lock()
            .map(|mut v| std::mem::take(&mut *v))
            .unwrap_or_default()
    }
}

impl Intercept for Recorder {
    fn name(&self) -> &'static str {
        "TransactionRecorder"
    }

    fn read_before_execution(
        &self,
        context: &BeforeSerializationInterceptorContextRef<'_>,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if let Some(input) = context.input().downcast_ref::<TransactWriteItemsInput>() {
            self.0.lock().map_err(|_| "poisoned")?.push(input.clone());
        }
        Ok(())
    }
}

/// One item of a recorded transaction, sized.
#[derive(Debug)]
pub struct Written {
    pub entity: String,
    pub operation: &'static str,
    pub bytes: usize,
    /// Transactional: 2 x 1 WCU per started KB of the larger of before and after.
    pub wcu: u64,
}

/// An item's table key as (pk, sk).
fn names(item: &Item) -> (String, String) {
    let text = |name: &str| match item.get(name) {
        Some(AttributeValue::S(value)) => value.clone(),
        _ => String::new(),
    };
    (text("pk"), text("sk"))
}

fn key_of(item: &Item) -> Item {
    item.iter()
        .filter(|(k, _)| *k == "pk" || *k == "sk")
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

async fn get(admin: &Client, table: &str, key: &Item) -> Option<Item> {
    admin
        .get_item()
        .table_name(table)
        .set_key(Some(key.clone()))
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .item()
        .cloned()
}

/// Every item a transaction wrote, sized on what it sent and left behind;
/// `before` holds the items as they were before it.
async fn sized(
    admin: &Client,
    table: &str,
    input: &TransactWriteItemsInput,
    before: &HashMap<(String, String), usize>,
) -> Vec<Written> {
    let mut written = Vec::new();
    for item in input.transact_items() {
        let (operation, key, sent) = if let Some(put) = item.put() {
            ("Put", key_of(put.item()), Some(put.item().clone()))
        } else if let Some(update) = item.update() {
            ("Update", update.key().clone(), None)
        } else {
            ("other", Item::new(), None)
        };
        let after = get(admin, table, &key).await;
        let stored = sent.or(after.clone()).unwrap_or_default();
        let bytes = item_size(&stored).max(after.as_ref().map(item_size).unwrap_or(0));
        let larger = bytes.max(before.get(&names(&key)).copied().unwrap_or(0));
        let entity = match stored.get("entity_type") {
            Some(AttributeValue::S(entity)) => entity.clone(),
            _ => "?".into(),
        };
        written.push(Written {
            entity,
            operation,
            bytes,
            wcu: 2 * write_units(larger),
        });
    }
    written
}

/// The sizes of every item now in the table, by key.
async fn sizes(admin: &Client, table: &str) -> HashMap<(String, String), usize> {
    let mut sizes = HashMap::new();
    let mut start = None;
    loop {
        let page = admin
            .scan()
            .table_name(table)
            .set_exclusive_start_key(start)
            .send()
            .await
            .unwrap();
        for item in page.items() {
            sizes.insert(names(item), item_size(item));
        }
        start = page.last_evaluated_key().cloned();
        if start.is_none() {
            return sizes;
        }
    }
}

/// A paid order of ten lines of 10.00 for ann.
fn ten_lines(id: &str) -> Order {
    let mut order = paid(id, "ann", "10.00", t0());
    let line = order.lines[0].clone();
    order.lines = (1..=10)
        .map(|n| Line {
            line_id: LineId::parse(&format!("{id}{n:02}")).unwrap(),
            ..line.clone()
        })
        .collect();
    order.subtotal = usd("100.00");
    order.total = usd("100.00");
    order
}

pub struct Measured {
    pub paid: Vec<Written>,
    pub refund: Vec<Written>,
    pub refund_reads: u64,
    pub paid_reads: u64,
}

/// A customer's second order (the plain credited order), then a refund of
/// two of its lines, through the order-event use case on DynamoDB.
pub async fn measure(endpoint: &str) -> Measured {
    let base = moto::store_on(endpoint, "budget").await;
    let table = base.table_name().to_string();
    let admin = base.client().clone();
    let sdk = moto::sdk_config().await;
    let recorder = Recorder::default();
    let client = Client::from_conf(
        aws_sdk_dynamodb::config::Builder::from(&sdk)
            .endpoint_url(endpoint)
            .interceptor(recorder.clone())
            .build(),
    );
    let store = Arc::new(DynamoStore::new(client, table.clone()));
    let program = cashback_test_support::fixtures::program();
    let ctx = context(store.clone(), Arc::new(Silent), &program).await;
    let event = |order: Order| OrderEvent::Paid(order);
    // The first order opens ann's account: not measured.
    handle_order_event(&ctx, &shop(), &event(ten_lines("1001")), t0())
        .await
        .unwrap();
    recorder.take();

    let before = sizes(&admin, &table).await;
    let reads = store.request_counts().reads;
    handle_order_event(&ctx, &shop(), &event(ten_lines("1002")), t0())
        .await
        .unwrap();
    let paid_reads = store.request_counts().reads - reads;
    let sent = recorder.take();
    assert_eq!(sent.len(), 1, "one TransactWriteItems");
    let paid = sized(&admin, &table, &sent[0], &before).await;

    let before = sizes(&admin, &table).await;
    let reads = store.request_counts().reads;
    let refund = OrderEvent::Refunded(Refund {
        refund_id: RefundId::parse("r-1").unwrap(),
        order_id: OrderId::parse("1002").unwrap(),
        basis: RefundBasis::Lines {
            lines: vec![
                RefundedLine {
                    line_id: LineId::parse("100201").unwrap(),
                    quantity: 1,
                },
                RefundedLine {
                    line_id: LineId::parse("100202").unwrap(),
                    quantity: 1,
                },
            ],
        },
        occurred_at: t0(),
    });
    handle_order_event(&ctx, &shop(), &refund, t0())
        .await
        .unwrap();
    let refund_reads = store.request_counts().reads - reads;
    let sent = recorder.take();
    assert_eq!(sent.len(), 1, "one TransactWriteItems");
    let refund = sized(&admin, &table, &sent[0], &before).await;
    Measured {
        paid,
        refund,
        refund_reads,
        paid_reads,
    }
}

pub fn print(label: &str, written: &[Written]) {
    let total: u64 = written.iter().map(|w| w.wcu).sum();
    println!("{label}: {} items, {total} WCU", written.len());
    for w in written {
        println!(
            "  {} {} {} B = {} WCU",
            w.operation, w.entity, w.bytes, w.wcu
        );
    }
}

fn budgeted(written: &[Written]) -> Vec<&Written> {
    written.iter().filter(|w| w.entity != "AGGREGATE").collect()
}

#[tokio::test]
async fn a_plain_credited_order_is_at_most_4_items_each_under_1_kb_and_8_wcu() {
    let Some(endpoint) = moto::endpoint("budget") else {
        return;
    };
    let measured = measure(&endpoint).await;
    print("paid", &measured.paid);
    assert_eq!(measured.paid_reads, 1, "one BatchGetItem");
    let items = budgeted(&measured.paid);
    let entities: Vec<&str> = items.iter().map(|w| w.entity.as_str()).collect();
    assert_eq!(entities, ["ACCOUNT", "LEDGER", "ORDER", "ORDER_LINES"]);
    for item in &items {
        assert!(item.bytes < 1024, "{} of {} bytes", item.entity, item.bytes);
    }
    assert!(items.iter().map(|w| w.wcu).sum::<u64>() <= 8);
}

#[tokio::test]
async fn a_refund_rewrites_the_small_order_state_not_its_lines() {
    let Some(endpoint) = moto::endpoint("budget") else {
        return;
    };
    let measured = measure(&endpoint).await;
    print("refund", &measured.refund);
    println!("refund reads: {}", measured.refund_reads);
    // The refund names no customer: the buyer's account is read once the
    // order's state names them (a second BatchGetItem).
    assert_eq!(measured.refund_reads, 2);
    let items = budgeted(&measured.refund);
    let entities: Vec<&str> = items.iter().map(|w| w.entity.as_str()).collect();
    assert_eq!(
        entities,
        ["ACCOUNT", "LEDGER", "ORDER"],
        "lines not written again"
    );
    for item in &items {
        assert!(item.bytes < 1024, "{} of {} bytes", item.entity, item.bytes);
    }
    assert!(items.iter().map(|w| w.wcu).sum::<u64>() <= 6);
}
