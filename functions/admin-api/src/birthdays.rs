//! A customer's birthday, as the merchant sets or corrects it:
//! `PUT /v1/shops/{shop}/customers/{id}/birthday` with `{"month", "day"}`
//! (never a year). A day that exists in no year (30 February, 31 April) is
//! refused with 400 naming `birthday`; 29 February is a birthday, kept on
//! 28 February in other years (docs/bonuses.md).

use axum::extract::State;
use axum::Json;
use serde::Deserialize;

use cashback_app::admin::{self, CustomerView};
use cashback_app::bonuses::{set_birthday, BirthdayOutcome};
use cashback_app::AppError;
use cashback_core::bonuses::{Birthday, BirthdaySource};
use cashback_edge::extract::JsonText;
use cashback_edge::ApiError;

use crate::customers::CustomerPath;
use crate::AdminState;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BirthdayBody {
    month: u32,
    day: u32,
}

/// Parses `{"month", "day"}` into a birthday, naming the field refused.
fn parse(body: &str) -> Result<Birthday, ApiError> {
    let body: BirthdayBody = serde_json::from_str(body).map_err(|error| {
        ApiError::invalid_field(
            "birthday",
            format!("give {{\"month\": 1-12, \"day\": 1-31}}: {error}"),
        )
    })?;
    Birthday::new(body.month, body.day)
        .map_err(|error| ApiError::invalid_field("birthday", error.to_string()))
}

pub(crate) async fn put_birthday(
    State(state): State<AdminState>,
    path: CustomerPath,
    JsonText(body): JsonText,
) -> Result<Json<CustomerView>, ApiError> {
    let (shop, customer) = (path.shop, path.customer);
    let birthday = parse(&body)?;
    let now = state.ctx.now();
    match set_birthday(
        &state.ctx,
        &shop,
        &customer,
        birthday,
        BirthdaySource::Merchant,
        now,
    )
    .await?
    {
        BirthdayOutcome::Changed | BirthdayOutcome::Unchanged => {}
        BirthdayOutcome::UnknownCustomer => {
            return Err(AppError::NotFound(format!("customer {customer}")).into())
        }
    }
    Ok(Json(
        admin::get_customer(&state.ctx, &shop, &customer).await?,
    ))
}
