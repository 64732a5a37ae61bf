//! The app installed again on a shop that was marked uninstalled: for
//! platforms whose install the engine does not see, and for operators
//! (Shopify shops are also marked installed when the embedded dashboard
//! opens). Syncing resumes and every code is reconciled (docs/compliance.md).

use axum::extract::State;
use axum::Json;

use cashback_app::compliance::{self, Reinstalled};
use cashback_core::ids::ShopId;
use cashback_edge::extract::InPath;
use cashback_edge::ApiError;

use crate::AdminState;

/// `POST /v1/shops/{shop}/reinstall`: 200, what was done (nothing for a
/// shop that was installed).
pub(crate) async fn reinstall(
    State(state): State<AdminState>,
    InPath(shop): InPath<ShopId>,
) -> Result<Json<Reinstalled>, ApiError> {
    let now = state.ctx.now();
    Ok(Json(compliance::reinstall(&state.ctx, &shop, now).await?))
}
