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
    /// The platform's id of the line, which a line refund names.
    pub line_id: LineId,
    /// The product sold, for the program's product exclusions; None for a
    /// custom line with no product behind it.
    #[serde(default)]
    pub product_id: Option<ProductId>,
    /// The variant sold, for the program's variant exclusions.
    #[serde(default)]
    pub variant_id: Option<VariantId>,
    /// The merchant's stock-keeping unit, for SKU exclusions (compared
    /// trimmed and case-insensitively).
    #[serde(default)]
    pub sku: Option<String>,
    /// The brand or supplier as the platform names it, for vendor exclusions.
    #[serde(default)]
    pub vendor: Option<String>,
    /// Units bought; line refunds are counted in these units, capped here.
    pub quantity: u32,
    /// Price of one unit before discounts, in the shop's currency; includes
    /// tax when the shop's prices do (see `included_tax`).
    pub unit_price: Money,
    /// Every discount allocated to this line, for all its units together.
    pub discount: Money,
    /// Tax included in `unit_price` when the shop's prices include tax; it is
    /// not merchandise, so it leaves the eligible base.
    #[serde(default)]
    pub included_tax: Option<Money>,
    /// The line sells a gift card: money in another form, never eligible for
    /// cashback (it would be earned again when the card is spent).
    #[serde(default)]
    pub gift_card: bool,
    /// Price before a sale, when the platform or the imported catalog knows it.
    #[serde(default)]
    pub compare_at_price: Option<Money>,
    /// Collections the product belongs to, for collection exclusions; empty
    /// when the platform did not say.
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
    /// Takes off shipping (free or cheaper delivery).
    Shipping,
    /// Takes off the whole order's subtotal (10 % off everything).
    Order,
    /// Takes off particular products or lines.
    Product,
}

/// A discount code applied to an order, with what it took off.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppliedCode {
    /// The code as entered, normalised; may be a customer's balance code, a
    /// cashback coupon or an ordinary discount code of the shop.
    pub code: Code,
    /// What the platform took off for it, in the shop's currency: positive,
    /// or zero for a cashback coupon a cart attribute names (it takes
    /// nothing off); for a balance code, what its owner is debited.
    pub amount: Money,
    /// What the code discounted, as the platform reports it.
    pub kind: DiscountKind,
}

/// Who placed an order. A guest has only an email; a platform may send
/// neither (a POS sale with no customer): such an order earns nothing.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct CustomerRef {
    /// The platform's customer id; None for a guest checkout.
    #[serde(default)]
    pub id: Option<CustomerId>,
    /// The address on the order, for guests' accounts, emails, per-customer
    /// coupon limits and self-referral checks.
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
    /// The platform's id of the order, shared by all its events.
    pub order_id: OrderId,
    /// Who bought: the account that earns on the order.
    pub customer: CustomerRef,
    /// The shop's currency (Shopify's `shop_money`), which every amount of
    /// the order is in; an amount in another currency than the ledger's makes
    /// applying the event fail, nothing converted.
    pub currency: Currency,
    /// Every line bought, the basis of the eligible base and of line refunds.
    pub lines: Vec<Line>,
    /// Merchandise after discounts, as the platform reports it.
    pub subtotal: Money,
    /// Shipping charged, never eligible; subtracted from `total` to know what
    /// the merchandise cost when a refund gives only an amount.
    pub shipping: Money,
    /// What the customer was charged in all.
    pub total: Money,
    /// Every discount code on the order with its amount: balance codes to
    /// redeem, cashback coupons to credit, the rest for coupon exclusivity.
    #[serde(default)]
    pub discount_codes: Vec<AppliedCode>,
    /// The checkout the order completes, whose balance hold it frees.
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
    /// The platform's id of this refund: a second delivery of it changes
    /// nothing, another refund of the same order adds up with it.
    pub refund_id: RefundId,
    /// The order refunded; the refund waits for it when it arrives first.
    pub order_id: OrderId,
    /// What was given back, from which the merchandise share is computed.
    pub basis: RefundBasis,
    /// When the platform made the refund.
    pub occurred_at: DateTime<Utc>,
}

/// What a refund gave back. The clawback is the cashback earned times the
/// share of eligible merchandise refunded, computed over all the order's
/// refunds so far.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum RefundBasis {
    /// Units of the order's lines given back. No lines (a shipping-only
    /// refund) refunds no merchandise.
    Lines {
        /// Each line refunded, with its units.
        lines: Vec<RefundedLine>,
    },
    /// A bare amount of money, taken as that share of what the order's
    /// merchandise cost (its total less shipping), never more than all of it.
    Amount {
        /// Money refunded, positive, in the shop's currency.
        amount: Money,
    },
    /// Units of lines plus money refunded beyond them (Shopify's
    /// `refund_discrepancy`), each counted as above.
    LinesAndAmount {
        /// Each line refunded, with its units.
        lines: Vec<RefundedLine>,
        /// Money refunded beyond the lines, positive, in the shop's currency.
        amount: Money,
    },
}

/// Units of one order line given back by a refund.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefundedLine {
    /// The order's line, as [`Line::line_id`]; a line the order does not
    /// have refunds nothing.
    pub line_id: LineId,
    /// Units given back by this refund; all refunds of a line together are
    /// capped at the units bought.
    pub quantity: u32,
}

/// A platform event in the engine's terms.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum OrderEvent {
    /// The order was placed (Shopify `orders/create`), paid or not yet:
    /// records what any balance code on it spent, at once, so the code's
    /// owner sees less before the paid event. Earns nothing. The paid and
    /// fulfilled events then find the redemption settled.
    Created(Order),
    /// The customer paid: earns under an on-paid trigger, and redeems any
    /// balance code on the order whatever the trigger.
    Paid(Order),
    /// The order shipped: earns under an on-fulfilled trigger.
    Fulfilled(Order),
    /// Money was given back: claws back cashback and restores spent credit
    /// in proportion.
    Refunded(Refund),
    /// The order was cancelled: voids its pending cashback, claws back the
    /// rest and restores all spent credit.
    Cancelled(Order),
}

impl OrderEvent {
    /// The order the event belongs to, whatever its kind.
    pub fn order_id(&self) -> &OrderId {
        match self {
            OrderEvent::Created(order)
            | OrderEvent::Paid(order)
            | OrderEvent::Fulfilled(order)
            | OrderEvent::Cancelled(order) => &order.order_id,
            OrderEvent::Refunded(refund) => &refund.order_id,
        }
    }

    /// The business key of the event's effect: a retry or a second delivery
    /// of the same action has the same key, whatever its transport id.
    pub fn effect_key(&self) -> String {
        match self {
            OrderEvent::Created(order) => format!("order:{}:created", order.order_id),
            OrderEvent::Paid(order) => format!("order:{}:paid", order.order_id),
            OrderEvent::Fulfilled(order) => format!("order:{}:fulfilled", order.order_id),
            OrderEvent::Cancelled(order) => format!("order:{}:cancelled", order.order_id),
            OrderEvent::Refunded(refund) => {
                format!("order:{}:refund:{}", refund.order_id, refund.refund_id)
            }
        }
    }

    /// When the platform says the event happened (not when it was delivered).
    pub fn occurred_at(&self) -> DateTime<Utc> {
        match self {
            OrderEvent::Created(order)
            | OrderEvent::Paid(order)
            | OrderEvent::Fulfilled(order)
            | OrderEvent::Cancelled(order) => order.occurred_at,
            OrderEvent::Refunded(refund) => refund.occurred_at,
        }
    }
}

/// A checkout's cart, as sent to validation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cart {
    /// The cart's currency; a cart in another currency than the shop's
    /// ledger is refused, never converted.
    pub currency: Currency,
    /// The lines in the cart, for the eligible base a coupon is judged on.
    pub lines: Vec<Line>,
    /// Merchandise after the other discounts, before the code being checked.
    pub subtotal: Money,
    /// Shipping quoted so far, when known; never eligible, no rule counts it.
    #[serde(default)]
    pub shipping: Option<Money>,
    /// Discounts already applied, by kind, for the combination rules.
    #[serde(default)]
    pub other_discounts: Vec<CartDiscount>,
    /// The gateway chosen, when the checkout knows it, for coupons limited
    /// to some payment methods.
    #[serde(default)]
    pub payment_method: Option<String>,
}

/// A discount already on a cart besides the code being checked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CartDiscount {
    /// What it discounts, checked against the program's combination switches.
    pub kind: DiscountKind,
    /// What it takes off, positive, in the cart's currency.
    pub amount: Money,
    /// Its code; None for an automatic discount, which does not count
    /// against an exclusive coupon.
    #[serde(default)]
    pub code: Option<Code>,
}
