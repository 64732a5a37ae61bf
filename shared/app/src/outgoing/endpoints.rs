//! A shop's event endpoints and what was delivered to them: the records,
//! the port that keeps them, and the admin use cases (create, list, rotate
//! the secret, delete, recent deliveries).
//!
//! The signing secret is kept as it is (an HMAC needs it), in the shop's
//! partition, and shown once: in the answer that created or rotated it.
//! Nothing else ever carries it: views, lists, deliveries and logs (the
//! record's `Debug` prints it redacted).

use std::fmt;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use cashback_core::ids::ShopId;

use super::events::EventKind;
use super::url::{check_resolved, check_syntax, UrlChecks, UrlError};
use crate::admin::parse_body;
use cashback_core::program::FieldError;

use crate::error::AppError;
use crate::store::StoreError;
use crate::Context;

/// Endpoints one shop may have.
pub const MAX_ENDPOINTS: usize = 10;

/// How long the secret before a rotation still signs (beside the new one).
pub const ROTATION_GRACE_HOURS: i64 = 24;

/// Deliveries listed at most per request.
pub const MAX_DELIVERIES_LISTED: u32 = 100;

/// How long a delivery's record is kept (DynamoDB's TTL removes it).
pub const DELIVERY_RECORD_DAYS: i64 = 30;

/// A description's longest length.
pub const MAX_DESCRIPTION_CHARS: usize = 200;

/// One endpoint, as stored.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointRecord {
    /// `ep_` and 16 hex digits.
    pub id: String,
    /// The shop it belongs to.
    pub shop: ShopId,
    /// Where events are POSTed.
    pub url: String,
    /// The merchant's note.
    #[serde(default)]
    pub description: Option<String>,
    /// The signing secret.
    pub secret: String,
    /// The secret before the last rotation, signing too until
    /// `previous_valid_until`.
    #[serde(default)]
    pub previous_secret: Option<String>,
    /// When the previous secret stops signing.
    #[serde(default)]
    pub previous_valid_until: Option<DateTime<Utc>>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// Who created it (the admin API's caller).
    pub created_by: String,
    /// When its secret was last rotated.
    #[serde(default)]
    pub rotated_at: Option<DateTime<Utc>>,
}

impl fmt::Debug for EndpointRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EndpointRecord")
            .field("id", &self.id)
            .field("shop", &self.shop)
            .field("url", &self.url)
            .field("secret", &"<redacted>")
            .field("previous_valid_until", &self.previous_valid_until)
            .finish_non_exhaustive()
    }
}

impl EndpointRecord {
    /// The secrets that sign at `now`: the current one first, then the
    /// previous one during its grace period.
    pub fn signing_secrets(&self, now: DateTime<Utc>) -> Vec<&str> {
        let mut secrets = vec![self.secret.as_str()];
        if let (Some(previous), Some(until)) = (&self.previous_secret, self.previous_valid_until) {
            if now < until {
                secrets.push(previous.as_str());
            }
        }
        secrets
    }

    /// What the API shows of it: never a secret.
    pub fn view(&self) -> EndpointView {
        EndpointView {
            id: self.id.clone(),
            url: self.url.clone(),
            description: self.description.clone(),
            created_at: self.created_at,
            created_by: self.created_by.clone(),
            rotated_at: self.rotated_at,
            previous_secret_valid_until: self.previous_valid_until,
        }
    }
}

/// An endpoint as listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EndpointView {
    /// Its id.
    pub id: String,
    /// Where events go.
    pub url: String,
    /// The merchant's note.
    pub description: Option<String>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// Who created it.
    pub created_by: String,
    /// When its secret was last rotated.
    pub rotated_at: Option<DateTime<Utc>>,
    /// Until when the secret before the last rotation still signs.
    pub previous_secret_valid_until: Option<DateTime<Utc>>,
}

/// An endpoint just created, or its secret just rotated: the only answers
/// that carry the secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WithSecret {
    /// The endpoint.
    #[serde(flatten)]
    pub endpoint: EndpointView,
    /// The signing secret, shown this once.
    pub secret: String,
}

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    /// The endpoint answered 2xx.
    Delivered,
    /// Failed so far; a retry is scheduled.
    Retrying,
    /// Failed every attempt; given up (alarmed).
    Parked,
}

/// One event's delivery to one endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryRecord {
    /// The endpoint.
    pub endpoint_id: String,
    /// The event's id.
    pub event_id: String,
    /// The event's kind.
    pub kind: EventKind,
    /// Where it stands.
    pub status: DeliveryStatus,
    /// Attempts made.
    pub attempts: u32,
    /// The last failure (status code or transport error); no secret, no body.
    pub last_error: Option<String>,
    /// The last HTTP status answered, if any.
    pub last_status: Option<u16>,
    /// When the first attempt was made (orders the list; fixed).
    pub first_attempt_at: DateTime<Utc>,
    /// When the record last changed.
    pub updated_at: DateTime<Utc>,
    /// When the next attempt is due, while retrying.
    pub next_attempt_at: Option<DateTime<Utc>>,
}

/// A delivery waiting for a later attempt: what the scheduled run sends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingDelivery {
    /// The shop.
    pub shop: ShopId,
    /// The endpoint.
    pub endpoint_id: String,
    /// The event's id.
    pub event_id: String,
    /// The event's kind.
    pub kind: EventKind,
    /// The body as first sent (JSON).
    pub body: String,
    /// Attempts made so far.
    pub attempts: u32,
    /// When the first attempt was made.
    pub first_attempt_at: DateTime<Utc>,
    /// When the next attempt is due.
    pub next_attempt_at: DateTime<Utc>,
}

/// The port that keeps endpoints, deliveries and pending retries.
/// Implemented by the DynamoDB and in-memory adapters of shared/store.
#[async_trait::async_trait]
pub trait EndpointStore: Send + Sync {
    /// Stores a new endpoint; AlreadyExists if its id is taken.
    async fn create_endpoint(&self, record: &EndpointRecord) -> Result<(), StoreError>;

    /// Every endpoint of a shop, in id order (at most [`MAX_ENDPOINTS`]: one query).
    async fn list_endpoints(&self, shop: &ShopId) -> Result<Vec<EndpointRecord>, StoreError>;

    /// Replaces an existing endpoint; false (nothing written) if it does not exist.
    async fn replace_endpoint(&self, record: &EndpointRecord) -> Result<bool, StoreError>;

    /// Deletes an endpoint; false if there was none.
    async fn delete_endpoint(&self, shop: &ShopId, id: &str) -> Result<bool, StoreError>;

    /// Records a delivery (replacing the record of the same endpoint and
    /// event), kept until `expires_at`.
    async fn put_delivery(
        &self,
        shop: &ShopId,
        record: &DeliveryRecord,
        expires_at: DateTime<Utc>,
    ) -> Result<(), StoreError>;

    /// An endpoint's deliveries, the most recent first attempt first.
    async fn list_deliveries(
        &self,
        shop: &ShopId,
        endpoint_id: &str,
        limit: u32,
    ) -> Result<Vec<DeliveryRecord>, StoreError>;

    /// Stores (or replaces) a pending retry.
    async fn put_pending(&self, pending: &PendingDelivery) -> Result<(), StoreError>;

    /// Removes a pending retry (none: nothing happens).
    async fn delete_pending(&self, pending: &PendingDelivery) -> Result<(), StoreError>;

    /// Pending retries due at or before `up_to`, at most `limit`, earliest first.
    async fn due_pending(
        &self,
        up_to: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<PendingDelivery>, StoreError>;
}

/// The endpoint store behind a context, or why there is none.
pub fn endpoint_store(ctx: &Context) -> Result<&dyn EndpointStore, AppError> {
    ctx.store
        .event_endpoints()
        .ok_or_else(|| AppError::Invalid("this store does not keep event endpoints".into()))
}

/// The body of `POST .../event-endpoints`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewEndpoint {
    url: String,
    #[serde(default)]
    description: Option<String>,
}

fn url_field(error: UrlError) -> AppError {
    AppError::InvalidFields(vec![FieldError {
        field: "url".into(),
        message: error.to_string(),
    }])
}

async fn known_shop(ctx: &Context, shop: &ShopId) -> Result<(), AppError> {
    ctx.store
        .get_shop(shop)
        .await?
        .map(|_| ())
        .ok_or_else(|| AppError::UnknownShop(shop.to_string()))
}

/// The fresh random values a new endpoint needs (made by the caller from
/// the OS's random source).
#[derive(Debug, Clone)]
pub struct Fresh {
    /// The endpoint's id.
    pub id: String,
    /// Its first secret.
    pub secret: String,
}

/// Creates an endpoint from the request body.
pub async fn create(
    ctx: &Context,
    shop: &ShopId,
    body: &str,
    fresh: Fresh,
    principal: &str,
    checks: UrlChecks<'_>,
    now: DateTime<Utc>,
) -> Result<WithSecret, AppError> {
    let store = endpoint_store(ctx)?;
    let new: NewEndpoint = parse_body(body)?;
    let checked = check_syntax(&new.url, checks.policy).map_err(url_field)?;
    let description = new
        .description
        .map(|d| d.trim().to_string())
        .filter(|d| !d.is_empty());
    if description
        .as_ref()
        .is_some_and(|d| d.chars().count() > MAX_DESCRIPTION_CHARS)
    {
        return Err(AppError::InvalidFields(vec![FieldError {
            field: "description".into(),
            message: format!("must be at most {MAX_DESCRIPTION_CHARS} characters"),
        }]));
    }
    known_shop(ctx, shop).await?;
    check_resolved(&checked, checks.resolver)
        .await
        .map_err(url_field)?;
    let existing = store.list_endpoints(shop).await?;
    if existing.len() >= MAX_ENDPOINTS {
        return Err(AppError::Conflict(format!(
            "the shop has {} endpoints, the most it may hold: delete one first",
            existing.len()
        )));
    }
    let record = EndpointRecord {
        id: fresh.id,
        shop: shop.clone(),
        url: checked.url,
        description,
        secret: fresh.secret,
        previous_secret: None,
        previous_valid_until: None,
        created_at: now,
        created_by: principal.to_string(),
        rotated_at: None,
    };
    store.create_endpoint(&record).await?;
    tracing::info!(shop = %shop, endpoint = %record.id, by = principal, "event endpoint created");
    Ok(WithSecret {
        endpoint: record.view(),
        secret: record.secret,
    })
}

/// The shop's endpoints, without their secrets.
pub async fn list(ctx: &Context, shop: &ShopId) -> Result<Vec<EndpointView>, AppError> {
    let store = endpoint_store(ctx)?;
    known_shop(ctx, shop).await?;
    Ok(store
        .list_endpoints(shop)
        .await?
        .iter()
        .map(EndpointRecord::view)
        .collect())
}

async fn find(
    store: &dyn EndpointStore,
    shop: &ShopId,
    id: &str,
) -> Result<EndpointRecord, AppError> {
    store
        .list_endpoints(shop)
        .await?
        .into_iter()
        .find(|e| e.id == id)
        .ok_or_else(|| AppError::NotFound(format!("event endpoint {id}")))
}

/// Gives an endpoint a new secret; the old one keeps signing (beside the
/// new) for `previous_valid_hours` (at most [`ROTATION_GRACE_HOURS`]), so
/// the merchant can switch without losing an event. 0 ends the old one at
/// once (a leaked secret), and any earlier previous secret with it.
pub async fn rotate(
    ctx: &Context,
    shop: &ShopId,
    id: &str,
    secret: String,
    previous_valid_hours: i64,
    principal: &str,
    now: DateTime<Utc>,
) -> Result<WithSecret, AppError> {
    if !(0..=ROTATION_GRACE_HOURS).contains(&previous_valid_hours) {
        return Err(AppError::InvalidFields(vec![FieldError {
            field: "previous_valid_hours".into(),
            message: format!("must be a whole number of hours from 0 to {ROTATION_GRACE_HOURS}"),
        }]));
    }
    let store = endpoint_store(ctx)?;
    let mut record = find(store, shop, id).await?;
    let old = std::mem::replace(&mut record.secret, secret);
    if previous_valid_hours == 0 {
        record.previous_secret = None;
        record.previous_valid_until = None;
    } else {
        record.previous_secret = Some(old);
        record.previous_valid_until = Some(now + Duration::hours(previous_valid_hours));
    }
    record.rotated_at = Some(now);
    if !store.replace_endpoint(&record).await? {
        return Err(AppError::NotFound(format!("event endpoint {id}")));
    }
    tracing::info!(
        shop = %shop,
        endpoint = %id,
        by = principal,
        previous_valid_hours,
        "event endpoint secret rotated"
    );
    Ok(WithSecret {
        endpoint: record.view(),
        secret: record.secret,
    })
}

/// Deletes an endpoint: nothing more is sent to it (retries pending for it
/// are dropped when they fall due).
pub async fn delete(
    ctx: &Context,
    shop: &ShopId,
    id: &str,
    principal: &str,
) -> Result<(), AppError> {
    let store = endpoint_store(ctx)?;
    if !store.delete_endpoint(shop, id).await? {
        return Err(AppError::NotFound(format!("event endpoint {id}")));
    }
    tracing::info!(shop = %shop, endpoint = %id, by = principal, "event endpoint deleted");
    Ok(())
}

/// An endpoint's recent deliveries, newest first.
pub async fn deliveries(
    ctx: &Context,
    shop: &ShopId,
    id: &str,
    limit: u32,
) -> Result<Vec<DeliveryRecord>, AppError> {
    let store = endpoint_store(ctx)?;
    // The endpoint must be this shop's: another shop's id is not found.
    find(store, shop, id).await?;
    Ok(store
        .list_deliveries(shop, id, limit.clamp(1, MAX_DELIVERIES_LISTED))
        .await?)
}
