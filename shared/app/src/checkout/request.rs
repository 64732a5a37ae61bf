//! What a checkout sends, and the bounds on it checked before anything is
//! read.

use serde::Deserialize;

use cashback_core::ids::{
    CheckoutId, Code, CollectionId, CustomerId, Email, LineId, ProductId, VariantId,
};
use cashback_core::money::{Currency, Money};
use cashback_core::order::{Cart, CartDiscount, DiscountKind, Line};
use cashback_core::program::FieldError;

use super::{MAX_CART_LINES, MAX_LINE_COLLECTIONS, MAX_OTHER_DISCOUNTS, MAX_STRING_CHARS};

/// What a checkout sends.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ValidateRequest {
    /// The code as the shopper typed it (matched case-insensitively).
    pub code: String,
    /// The shopper's customer id, when logged in.
    #[serde(default)]
    pub customer_id: Option<CustomerId>,
    /// The shopper's email, when known: per-customer coupon limits also
    /// count by email.
    #[serde(default)]
    pub email: Option<Email>,
    /// The cart's currency (the shop's, as the ledger is kept in it).
    pub currency: Currency,
    /// The cart the code is to apply to.
    pub cart: CartInput,
    /// Reserve the discount for this checkout while the shopper pays.
    #[serde(default)]
    pub reserve: Option<Reserve>,
    /// Accepted for older checkouts and ignored: unknown codes are counted
    /// per shop and source address, never by a field the client chooses
    /// (a new value per request would reset the count).
    #[serde(default)]
    pub caller: Option<String>,
}

/// A hold asked for with a validation.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Reserve {
    /// The checkout the hold is for: validating again replaces its hold.
    pub checkout_id: CheckoutId,
    /// Default: the program's hold TTL; capped at
    /// [`MAX_HOLD_TTL_SECONDS`](crate::checkout::MAX_HOLD_TTL_SECONDS).
    #[serde(default)]
    pub ttl_seconds: Option<u32>,
}

/// The cart as a checkout sends it; amounts are decimal strings ("12.30").
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct CartInput {
    /// The cart's lines.
    #[serde(default)]
    pub lines: Vec<LineInput>,
    /// Merchandise after the other discounts, before this code.
    pub subtotal: String,
    /// Shipping, when known (a program may exclude it).
    #[serde(default)]
    pub shipping: Option<String>,
    /// Discounts already on the cart, each with its kind.
    #[serde(default)]
    pub other_discounts: Vec<DiscountInput>,
    /// How the shopper pays, when known (coupons may require one).
    #[serde(default)]
    pub payment_method: Option<String>,
}

/// One line of the cart.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct LineInput {
    /// Optional: lines are numbered in order when the checkout has no ids.
    #[serde(default)]
    pub line_id: Option<LineId>,
    /// The product, for exclusions and the catalog.
    #[serde(default)]
    pub product_id: Option<ProductId>,
    /// The variant.
    #[serde(default)]
    pub variant_id: Option<VariantId>,
    /// The SKU, for exclusions.
    #[serde(default)]
    pub sku: Option<String>,
    /// The vendor, for exclusions.
    #[serde(default)]
    pub vendor: Option<String>,
    /// The collections the product is in, for exclusions.
    #[serde(default)]
    pub collection_ids: Vec<CollectionId>,
    /// Units on the line.
    pub quantity: u32,
    /// The price of one unit.
    pub unit_price: String,
    /// The price before a sale, for programs that exclude sale items.
    #[serde(default)]
    pub compare_at_price: Option<String>,
    /// Every discount on the line, for all its units together.
    #[serde(default)]
    pub discount: Option<String>,
    /// A gift card, which never earns cashback.
    #[serde(default)]
    pub gift_card: bool,
}

/// A discount already on the cart.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct DiscountInput {
    /// What kind of discount it is.
    pub kind: DiscountKind,
    /// What it takes off, a decimal string.
    pub amount: String,
    /// Its code, when it has one (a coupon's stacking rules look at it).
    #[serde(default)]
    pub code: Option<Code>,
}

impl CartInput {
    /// The core's cart, or every field that is not a valid amount.
    pub fn to_cart(&self, currency: Currency) -> Result<Cart, Vec<FieldError>> {
        let mut errors = Vec::new();
        let mut money = |field: String, raw: &str| match Money::parse(raw, currency) {
            Ok(amount) if !amount.is_negative() => Some(amount),
            Ok(_) => {
                errors.push(FieldError {
                    field,
                    message: "must not be negative".into(),
                });
                None
            }
            Err(error) => {
                errors.push(FieldError {
                    field,
                    message: error.to_string(),
                });
                None
            }
        };
        let subtotal = money("cart.subtotal".into(), &self.subtotal);
        let shipping = self
            .shipping
            .as_deref()
            .map(|raw| money("cart.shipping".into(), raw));
        let mut lines = Vec::with_capacity(self.lines.len());
        for (index, input) in self.lines.iter().enumerate() {
            let field = |name: &str| format!("cart.lines[{index}].{name}");
            let unit_price = money(field("unit_price"), &input.unit_price);
            let compare_at = input
                .compare_at_price
                .as_deref()
                .map(|raw| money(field("compare_at_price"), raw));
            let discount = input
                .discount
                .as_deref()
                .map(|raw| money(field("discount"), raw));
            let line_id = match &input.line_id {
                Some(id) => Some(id.clone()),
                None => LineId::parse(&(index + 1).to_string()).ok(),
            };
            if let (Some(line_id), Some(unit_price)) = (line_id, unit_price) {
                lines.push(Line {
                    line_id,
                    product_id: input.product_id.clone(),
                    variant_id: input.variant_id.clone(),
                    sku: input.sku.clone(),
                    vendor: input.vendor.clone(),
                    quantity: input.quantity,
                    unit_price,
                    discount: discount.flatten().unwrap_or(Money::zero(currency)),
                    included_tax: None,
                    gift_card: input.gift_card,
                    compare_at_price: compare_at.flatten(),
                    collection_ids: input.collection_ids.clone(),
                });
            }
        }
        let mut other_discounts = Vec::with_capacity(self.other_discounts.len());
        for (index, input) in self.other_discounts.iter().enumerate() {
            if let Some(amount) = money(
                format!("cart.other_discounts[{index}].amount"),
                &input.amount,
            ) {
                other_discounts.push(CartDiscount {
                    kind: input.kind,
                    amount,
                    code: input.code.clone(),
                });
            }
        }
        if self.lines.len() > MAX_CART_LINES {
            errors.push(FieldError {
                field: "cart.lines".into(),
                message: format!("at most {MAX_CART_LINES} lines"),
            });
        }
        match (errors.is_empty(), subtotal) {
            (true, Some(subtotal)) => Ok(Cart {
                currency,
                lines,
                subtotal,
                shipping: shipping.flatten(),
                other_discounts,
                payment_method: self.payment_method.clone(),
            }),
            _ => Err(errors),
        }
    }
}

/// The request's sizes, checked before anything is read: every count and
/// string over its limit, named by field.
pub fn check_limits(request: &ValidateRequest) -> Result<(), Vec<FieldError>> {
    let mut errors = Vec::new();
    let mut too_long = |field: String, value: Option<&str>| {
        if value.is_some_and(|v| v.chars().count() > MAX_STRING_CHARS) {
            errors.push(FieldError {
                field,
                message: format!("at most {MAX_STRING_CHARS} characters"),
            });
        }
    };
    let cart = &request.cart;
    too_long("code".into(), Some(&request.code));
    too_long("caller".into(), request.caller.as_deref());
    too_long("cart.subtotal".into(), Some(&cart.subtotal));
    too_long("cart.shipping".into(), cart.shipping.as_deref());
    too_long("cart.payment_method".into(), cart.payment_method.as_deref());
    for (index, line) in cart.lines.iter().enumerate().take(MAX_CART_LINES) {
        let field = |name: &str| format!("cart.lines[{index}].{name}");
        too_long(field("sku"), line.sku.as_deref());
        too_long(field("vendor"), line.vendor.as_deref());
        too_long(field("unit_price"), Some(&line.unit_price));
        too_long(field("compare_at_price"), line.compare_at_price.as_deref());
        too_long(field("discount"), line.discount.as_deref());
    }
    for (index, discount) in cart
        .other_discounts
        .iter()
        .enumerate()
        .take(MAX_OTHER_DISCOUNTS)
    {
        too_long(
            format!("cart.other_discounts[{index}].amount"),
            Some(&discount.amount),
        );
    }
    if cart.lines.len() > MAX_CART_LINES {
        errors.push(FieldError {
            field: "cart.lines".into(),
            message: format!("at most {MAX_CART_LINES} lines"),
        });
    }
    if let Some(index) = cart
        .lines
        .iter()
        .take(MAX_CART_LINES)
        .position(|line| line.collection_ids.len() > MAX_LINE_COLLECTIONS)
    {
        errors.push(FieldError {
            field: format!("cart.lines[{index}].collection_ids"),
            message: format!("at most {MAX_LINE_COLLECTIONS} collections"),
        });
    }
    if cart.other_discounts.len() > MAX_OTHER_DISCOUNTS {
        errors.push(FieldError {
            field: "cart.other_discounts".into(),
            message: format!("at most {MAX_OTHER_DISCOUNTS} discounts"),
        });
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_that_are_not_money_are_named_by_field() {
        let cart = CartInput {
            lines: vec![LineInput {
                line_id: None,
                product_id: None,
                variant_id: None,
                sku: None,
                vendor: None,
                collection_ids: Vec::new(),
                quantity: 1,
                unit_price: "ten".into(),
                compare_at_price: None,
                discount: Some("-1.00".into()),
                gift_card: false,
            }],
            subtotal: "10.001".into(),
            shipping: None,
            other_discounts: Vec::new(),
            payment_method: None,
        };
        let fields: Vec<String> = cart
            .to_cart(Currency::USD)
            .unwrap_err()
            .into_iter()
            .map(|e| e.field)
            .collect();
        assert_eq!(
            fields,
            [
                "cart.subtotal",
                "cart.lines[0].unit_price",
                "cart.lines[0].discount"
            ]
        );
    }
}
