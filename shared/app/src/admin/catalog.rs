//! Catalog import: the collections and compare-at prices the order events
//! read beside the order.

use serde::{Deserialize, Serialize};
use tracing::info;

use cashback_core::ids::{CollectionId, ProductId, ShopId};
use cashback_core::money::Money;

use crate::context::Context;
use crate::error::AppError;
use crate::store::*;

use super::{field, known_shop, parse_body};

/// One product of a catalog import.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CatalogItemInput {
    /// The platform's product id.
    pub product_id: ProductId,
    /// The collections the product is in (program exclusions name them).
    #[serde(default)]
    pub collection_ids: Vec<CollectionId>,
    /// Decimal string in the shop's currency, or null.
    #[serde(default)]
    pub compare_at_price: Option<String>,
}

/// A catalog import's body.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CatalogImport {
    /// The products, each replacing what was stored for it.
    pub products: Vec<CatalogItemInput>,
}

/// What an import did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CatalogImported {
    /// Products stored.
    pub imported: usize,
}

/// Imports up to [`MAX_CATALOG_BATCH`] products; each replaces what was
/// stored for it. The order-event path reads them with the order (one
/// read) to know collections and compare-at prices the platform left out.
pub async fn import_catalog(
    ctx: &Context,
    shop: &ShopId,
    body: &str,
) -> Result<CatalogImported, AppError> {
    let known = known_shop(ctx, shop).await?;
    let import: CatalogImport = parse_body(body)?;
    if import.products.is_empty() || import.products.len() > MAX_CATALOG_BATCH {
        return Err(AppError::InvalidFields(vec![field(
            "products",
            format!("must hold 1 to {MAX_CATALOG_BATCH} products; send more in several calls"),
        )]));
    }
    let mut errors = Vec::new();
    let mut products = Vec::with_capacity(import.products.len());
    for (i, item) in import.products.into_iter().enumerate() {
        let compare_at_price = match item.compare_at_price.as_deref() {
            None => None,
            Some(raw) => match Money::parse(raw, known.currency) {
                Ok(price) if !price.is_negative() => Some(price),
                Ok(_) => {
                    errors.push(field(
                        format!("products[{i}].compare_at_price"),
                        "must be zero or more",
                    ));
                    None
                }
                Err(error) => {
                    errors.push(field(
                        format!("products[{i}].compare_at_price"),
                        error.to_string(),
                    ));
                    None
                }
            },
        };
        products.push(CatalogProduct {
            product_id: item.product_id,
            collection_ids: item.collection_ids,
            compare_at_price,
        });
    }
    if !errors.is_empty() {
        return Err(AppError::InvalidFields(errors));
    }
    ctx.store.put_catalog(shop, &products).await?;
    info!(shop = %shop, products = products.len(), "catalog imported");
    Ok(CatalogImported {
        imported: products.len(),
    })
}
