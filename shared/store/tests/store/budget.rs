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
    /// Queries of the refund (its order's partition).
    pub refund_queries: u64,
    pub paid_reads: u64,
    pub paid_queries: u64,
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
    let queries = store.request_counts().queries;
    handle_order_event(&ctx, &shop(), &event(ten_lines("1002")), t0())
        .await
        .unwrap();
    let paid_reads = store.request_counts().reads - reads;
    let paid_queries = store.request_counts().queries - queries;
    let sent = recorder.take();
    assert_eq!(sent.len(), 1, "one TransactWriteItems");
    let paid = sized(&admin, &table, &sent[0], &before).await;

    let before = sizes(&admin, &table).await;
    let reads = store.request_counts().reads;
    let queries = store.request_counts().queries;
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
    let refund_queries = store.request_counts().queries - queries;
    let sent = recorder.take();
    assert_eq!(sent.len(), 1, "one TransactWriteItems");
    let refund = sized(&admin, &table, &sent[0], &before).await;
    Measured {
        paid,
        refund,
        refund_reads,
        refund_queries,
        paid_reads,
        paid_queries,
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
    // One round trip: the order's partition in one Query, sent at the same
    // time as the BatchGetItem of the rest.
    assert_eq!(measured.paid_reads, 1, "one BatchGetItem");
    assert_eq!(measured.paid_queries, 1, "the order in one Query beside it");
    let items = budgeted(&measured.paid);
    let entities: Vec<&str> = items.iter().map(|w| w.entity.as_str()).collect();
    assert_eq!(entities, ["ACCOUNT", "LEDGER", "ORDER", "ORDER_LINES"]);
    for item in &items {
        assert!(item.bytes < 1024, "{} of {} bytes", item.entity, item.bytes);
    }
    assert!(items.iter().map(|w| w.wcu).sum::<u64>() <= 8);
}

#[tokio::test]
async fn a_refund_reads_its_order_in_one_query_and_writes_its_record_once() {
    let Some(endpoint) = moto::endpoint("budget") else {
        return;
    };
    let measured = measure(&endpoint).await;
    print("refund", &measured.refund);
    println!(
        "refund reads: {} Query, {} BatchGetItem",
        measured.refund_queries, measured.refund_reads
    );
    // The order's state, lines and refund records in one Query; the refund
    // names no customer, so the buyer's account is read once the order's
    // state names them (one BatchGetItem).
    assert_eq!(measured.refund_queries, 1, "the order in one Query");
    assert_eq!(measured.refund_reads, 1, "the account in one BatchGetItem");
    let items = budgeted(&measured.refund);
    let entities: Vec<&str> = items.iter().map(|w| w.entity.as_str()).collect();
    assert_eq!(
        entities,
        ["ACCOUNT", "LEDGER", "ORDER", "ORDER_REFUND"],
        "lines not written again; the refund's record written once"
    );
    for item in &items {
        assert!(item.bytes < 1024, "{} of {} bytes", item.entity, item.bytes);
    }
    assert!(items.iter().map(|w| w.wcu).sum::<u64>() <= 8);
}

/// A refund of lines `2k + 1` and `2k + 2` of the big order.
fn big_refund(k: u32) -> OrderEvent {
    let lines = [2 * k + 1, 2 * k + 2]
        .into_iter()
        .map(|n| RefundedLine {
            line_id: LineId::parse(&format!("1400000{n:04}")).unwrap(),
            quantity: 1,
        })
        .collect();
    OrderEvent::Refunded(Refund {
        refund_id: RefundId::parse(&format!("9100000{k:04}")).unwrap(),
        order_id: OrderId::parse("5001").unwrap(),
        basis: RefundBasis::Lines { lines },
        occurred_at: t0(),
    })
}

#[tokio::test]
async fn a_250_line_order_with_30_refunds_keeps_its_state_item_under_1_kb_on_dynamodb() {
    let Some(endpoint) = moto::endpoint("budget") else {
        return;
    };
    let store = Arc::new(moto::store_on(&endpoint, "big_order").await);
    let table = store.table_name().to_string();
    let admin = store.client().clone();
    let program = cashback_test_support::fixtures::program();
    let ctx = context(store.clone(), Arc::new(Silent), &program).await;
    let mut order = paid("5001", "loyal", "4.00", t0());
    let line = order.lines[0].clone();
    order.lines = (1..=250)
        .map(|n| Line {
            line_id: LineId::parse(&format!("1400000{n:04}")).unwrap(),
            ..line.clone()
        })
        .collect();
    order.subtotal = usd("1000.00");
    order.total = usd("1000.00");
    handle_order_event(&ctx, &shop(), &OrderEvent::Paid(order.clone()), t0())
        .await
        .unwrap();
    let pk = cashback_store::keys::order_key(&shop(), &OrderId::parse("5001").unwrap());
    let state_key = |sk: &str| {
        Item::from([
            ("pk".to_string(), AttributeValue::S(pk.clone())),
            ("sk".to_string(), AttributeValue::S(sk.to_string())),
        ])
    };
    let first = item_size(&get(&admin, &table, &state_key("ORDER")).await.unwrap());
    let mut largest = first;
    for k in 0..30 {
        let counts = store.request_counts();
        let at = t0() + chrono::Duration::minutes(i64::from(k));
        let outcome = handle_order_event(&ctx, &shop(), &big_refund(k), at)
            .await
            .unwrap();
        assert!(matches!(
            outcome,
            cashback_app::events::EventOutcome::Applied { .. }
        ));
        let after = store.request_counts();
        assert_eq!(
            (after.queries - counts.queries, after.reads - counts.reads),
            (1, 1),
            "refund {k}: the order in one Query, the account in one BatchGetItem"
        );
        let state = get(&admin, &table, &state_key("ORDER")).await.unwrap();
        largest = largest.max(item_size(&state));
    }
    // Redelivered: refused by the record read back from the refund items.
    let writes = store.request_counts().writes;
    let again = handle_order_event(&ctx, &shop(), &big_refund(7), t0())
        .await
        .unwrap();
    assert_eq!(again, cashback_app::events::EventOutcome::Duplicate);
    assert_eq!(store.request_counts().writes, writes, "no write");

    let state = get(&admin, &table, &state_key("ORDER")).await.unwrap();
    let lines = get(&admin, &table, &state_key("LINES")).await.unwrap();
    let refund = get(&admin, &table, &state_key("REFUND#91000000007"))
        .await
        .unwrap();
    println!(
        "250-line order after 30 refunds: state item {} B (largest {largest} B, {first} B before any refund), lines item {} B, a refund item {} B",
        item_size(&state),
        item_size(&lines),
        item_size(&refund)
    );
    assert!(largest < 1024, "state item of {largest} bytes");
    // Only figures appear (clawed back, the refund count): no row per refund.
    assert!(
        largest <= first + 64,
        "the state does not grow with refunds"
    );
    let read = store
        .read(
            &shop(),
            &cashback_app::store::ReadRequest::order(OrderId::parse("5001").unwrap()),
        )
        .await
        .unwrap();
    let record = read.order.unwrap().value;
    assert_eq!(record.refunds.len(), 30);
    assert_eq!(read.order_refunds_stored, 30);
    // The cumulative clawback of 60 of 250 lines, as in memory.
    let memory = crate::bounded::big_order_record().await.value;
    assert_eq!(record.clawed_back, memory.clawed_back);
    assert_eq!(record.refunds, memory.refunds);
}

#[tokio::test]
async fn the_account_after_a_year_under_30_day_expiry_is_under_2_kb_as_stored_and_reads_back_exactly(
) {
    let Some(endpoint) = moto::endpoint("budget") else {
        return;
    };
    let store = moto::store_on(&endpoint, "year_account").await;
    let (program, account) = crate::bounded::orders_under_expiry(30, 365).await;
    let outcome = store
        .write(
            &shop(),
            cashback_app::store::WriteSet {
                accounts: vec![cashback_app::store::AccountWrite::of(
                    &program,
                    cashback_app::store::Versioned::new(account.clone()),
                )],
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(outcome, cashback_app::store::WriteOutcome::Committed);
    let pk = cashback_store::keys::account_key(&shop(), &account.customer);
    let key = Item::from([
        ("pk".to_string(), AttributeValue::S(pk)),
        ("sk".to_string(), AttributeValue::S("ACCOUNT".into())),
    ]);
    let stored = get(store.client(), store.table_name(), &key).await.unwrap();
    let bytes = item_size(&stored);
    println!(
        "account item as stored after 10,000 orders in a year, 30-day expiry: {bytes} B, {} lots",
        account.lots.len()
    );
    assert!(bytes < 2048, "account item of {bytes} bytes");
    let read = store
        .read(
            &shop(),
            &cashback_app::store::ReadRequest::account(&account.customer),
        )
        .await
        .unwrap();
    assert_eq!(read.accounts[&account.customer].value, account, "exact");
}
