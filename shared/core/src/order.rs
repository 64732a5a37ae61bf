//! What a platform tells us about an order or a checkout, in the engine's terms.
//!
//! The platform adapters (Shopify, WooCommerce, generic) turn their payloads
//! into these types; everything after that is platform-neutral. Amounts are in
//! the shop's currency (Shopify's `shop_money`).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::ids::{
    CheckoutId, Code, CollectionId, CustomerId, Email, LineId, OrderId, ProductId, RefundId,
    VariantId,
};
use crate::money::{Currency, Money, MoneyError};

/// One line of an order or a cart.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Line {
    pub line_id: LineId,
    #[serde(default)]
    pub product_id: Option<ProductId>,
    #[serde(default)]
    pub variant_id: Option<VariantId>,
    #[serde(default)]
    pub sku: Option<String>,
    #[serde(default)]
    pub vendor: Option<String>,
    pub quantity: u32,
    pub unit_price: Money,
    /// Every discount allocated to this line, for all its units together.
    pub discount: Money,
    /// Tax included in `unit_price` when the shop's prices include tax; it is
    /// not merchandise, so it leaves the eligible base.
    #[serde(default)]
    pub included_tax: Option<Money>,
    #[serde(default)]
    pub gift_card: bool,
    /// Price before a sale, when the platform or the imported catalog knows it.
    #[serde(default)]
    pub compare_at_price: Option<Money>,
    #[serde(default)]
    pub collection_ids: Vec<CollectionId>,
}

impl Line {
    /// What the customer pays for the line's merchandise: price times
    /// quantity, less its discounts and included tax, never below zero.
    pub fn net_merchandise(&self) -> Result<Money, MoneyError> {
        let gross = self.unit_price.times(self.quantity)?;
        let mut net = gross.checked_sub(self.discount)?;
        if let Some(tax) = self.included_tax {
            net = net.checked_sub(tax)?;
        }
        Ok(net.clamp_non_negative())
    }

    /// Sold below its compare-at price.
    pub fn on_sale(&self) -> bool {
        self.compare_at_price
            .is_some_and(|compare_at| compare_at.amount() > self.unit_price.amount())
    }
}

/// The kind of a discount, for the code's combination switches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DiscountKind {
    Shipping,
    Order,
    Product,
}

/// A discount code applied to an order, with what it took off.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppliedCode {
    pub code: Code,
    pub amount: Money,
    pub kind: DiscountKind,
}

/// Who placed an order. A guest has only an email; a platform may send
/// neither (a POS sale with no customer): such an order earns nothing.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct CustomerRef {
    #[serde(default)]
    pub id: Option<CustomerId>,
    #[serde(default)]
    pub email: Option<Email>,
}

impl CustomerRef {
    /// The account this customer earns on: their id, or their email for a guest.
    pub fn account_id(&self) -> Option<CustomerId> {
        match (&self.id, &self.email) {
            (Some(id), _) => Some(id.clone()),
            (None, Some(email)) => Some(CustomerId::for_guest(email)),
            (None, None) => None,
        }
    }
}

/// An order as of one platform event (paid, fulfilled or cancelled).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Order {
    pub order_id: OrderId,
    pub customer: CustomerRef,
    pub currency: Currency,
    pub lines: Vec<Line>,
    /// Merchandise after discounts, as the platform reports it.
    pub subtotal: Money,
    pub shipping: Money,
    /// What the customer was charged in all.
    pub total: Money,
    #[serde(default)]
    pub discount_codes: Vec<AppliedCode>,
    #[serde(default)]
    pub checkout_id: Option<CheckoutId>,
    /// Every payment gateway the order was paid through, in the platform's
    /// order (a gift card and a card, say: Shopify's
    /// `payment_gateway_names`); empty when the platform named none.
    #[serde(default)]
    pub payment_methods: Vec<String>,
    /// A referral code the customer arrived with (cart attribute or code).
    #[serde(default)]
    pub referral_code: Option<Code>,
    /// When the order itself was placed (Shopify `processed_at`, WooCommerce
    /// `date_paid_gmt`, ...), whatever event carries it: coupons and
    /// promotions are judged then. None when the platform gave no such time.
    #[serde(default)]
    pub placed_at: Option<DateTime<Utc>>,
    /// When the platform says it happened (paid, fulfilled or cancelled at).
    pub occurred_at: DateTime<Utc>,
}

/// A refund, as the platform reports it. Shopify names the refunded lines
/// (and any money refunded beyond them); WooCommerce usually gives only an
/// amount, which is then taken as a share of the order's merchandise.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refund {
    pub refund_id: RefundId,
    pub order_id: OrderId,
    pub basis: RefundBasis,
    pub occurred_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum RefundBasis {
    /// Units of the order's lines given back. No lines (a shipping-only
    /// refund) refunds no merchandise.
    Lines { lines: Vec<RefundedLine> },
    /// A bare amount of money, taken as that share of what the order's
    /// merchandise cost (its total less shipping), never more than all of it.
    Amount { amount: Money },
    /// Units of lines plus money refunded beyond them (Shopify's
    /// `refund_discrepancy`), each counted as above.
    LinesAndAmount {
        lines: Vec<RefundedLine>,
        amount: Money,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefundedLine {
    pub line_id: LineId,
    pub quantity: u32,
}

/// A platform event in the engine's terms.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum OrderEvent {
    Paid(Order),
    Fulfilled(Order),
    Refunded(Refund),
    Cancelled(Order),
}

impl OrderEvent {
    pub fn order_id(&self) -> &OrderId {
        match self {
            OrderEvent::Paid(order)
            | OrderEvent::Fulfilled(order)
            | OrderEvent::Cancelled(order) => &order.order_id,
            OrderEvent::Refunded(refund) => &refund.order_id,
        }
    }

    /// The business key of the event's effect: a retry or a second delivery
    /// of the same action has the same key, whatever its transport id.
    pub fn effect_key(&self) -> String {
        match self {
            OrderEvent::Paid(order) => format!("order:{}:paid", order.order_id),
            OrderEvent::Fulfilled(order) => format!("order:{}:fulfilled", order.order_id),
            OrderEvent::Cancelled(order) => format!("order:{}:cancelled", order.order_id),
            OrderEvent::Refunded(refund) => {
                format!("order:{}:refund:{}", refund.order_id, refund.refund_id)
            }
        }
    }

    pub fn occurred_at(&self) -> DateTime<Utc> {
        match self {
            OrderEvent::Paid(order)
            | OrderEvent::Fulfilled(order)
            | OrderEvent::Cancelled(order) => order.occurred_at,
            OrderEvent::Refunded(refund) => refund.occurred_at,
        }
    }
}

/// A checkout's cart, as sent to validation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cart {
    pub currency: Currency,
    pub lines: Vec<Line>,
    /// Merchandise after the other discounts, before the code being checked.
    pub subtotal: Money,
    #[serde(default)]
    pub shipping: Option<Money>,
    /// Discounts already applied, by kind, for the combination rules.
    #[serde(default)]
    pub other_discounts: Vec<CartDiscount>,
    #[serde(default)]
    pub payment_method: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CartDiscount {
    pub kind: DiscountKind,
    pub amount: Money,
    #[serde(default)]
    pub code: Option<Code>,
}
