//! Checkout validation: the use case behind `POST /v1/shops/{shop}/coupons/validate`.
//!
//! A checkout sends the code the shopper typed and its cart. The code is
//! either a customer's balance code (the code index names its owner) or a
//! cashback coupon; the answer says whether it works and, if not, the typed
//! reason with the figure that failed, what it takes off now (0.00 for a
//! coupon), the cashback the order will earn (program plus coupon), the
//! balance before and after, and the hold when one was asked for.
//!
//! A balance code is its owner's money. Under the program's default
//! `usable_by: owner_only`, another customer id or another email is refused
//! (`other_customer`) and a request that names no customer id and no email
//! is refused (`customer_required`) before anything of the balance is shown
//! or held. Under `anyone` the code works for whoever holds it, and the hold
//! sits on the owner's account. A code its owner has replaced is answered
//! as unknown (the index still names the owner, for orders already placed
//! with it).
//!
//! Round trips (DESIGN section 7): with the customer id, ONE read fetches
//! their account, the code's owner, the coupon and its use counts together;
//! without it, a first read resolves the code and, for a balance code, a
//! second fetches the owner's account. A reserve adds ONE write: the account
//! with the checkout's hold placed or replaced, conditioned on the version
//! read, so two checkouts racing for one balance cannot both take it: the
//! loser decides again on fresh data.
//!
//! Guessing codes must not pay. Generated codes carry 65 bits, and unknown
//! codes are counted per shop and source address (as API Gateway saw it,
//! never a field the client chooses) in a fixed window ([`GUESS_LIMIT`] per
//! [`GUESS_WINDOW_SECONDS`]), in a counter item of the store with a TTL, so
//! every container sees the same count. Past the limit the source gets 429
//! with the seconds left in the window, for every validation whatever the
//! code: answering known codes while refusing unknown ones would turn the
//! 429 itself into the oracle the limit is meant to close. The count is read
//! in the validation's first round trip (no extra one), and a container
//! that saw a source over the limit refuses it without reading until the
//! window ends ([`GuessBlocks`], kept in the [`Context`](crate::Context)).
//!
//! One request is bounded before anything is read ([`check_limits`]): at
//! most [`MAX_OTHER_DISCOUNTS`] other discounts (each a coupon to read),
//! [`MAX_CART_LINES`] lines and short strings, so a validation is at most
//! two reads of a few dozen keys (one BatchGetItem each).
//!
//! Layout: `request` (what a checkout sends, its bounds), `validate` (the
//! use case, its reads and the pure decision), `holds` (a balance code's
//! quote and hold), `limiter` (the count of unknown codes).

mod holds;
mod limiter;
mod request;
mod validate;

pub use holds::*;
pub use limiter::*;
pub use request::*;
pub use validate::*;

/// Unknown codes a caller may try per window before getting 429.
pub const GUESS_LIMIT: u64 = 10;
/// The rate-limit window.
pub const GUESS_WINDOW_SECONDS: i64 = 300;
/// A checkout may hold balance for at most this long (or the program's own
/// TTL if the merchant set a longer one): a hold locks money the customer
/// may want to spend elsewhere.
pub const MAX_HOLD_TTL_SECONDS: u32 = 3600;
/// Lines a cart may carry (Shopify's own cart limit is 500 lines).
pub const MAX_CART_LINES: usize = 500;
/// Other discounts a cart may carry: each may name a coupon the first read
/// fetches, so this bounds that read (Shopify stacks at most 25 codes).
pub const MAX_OTHER_DISCOUNTS: usize = 25;
/// Collections one line may name.
pub const MAX_LINE_COLLECTIONS: usize = 50;
/// The longest code, amount, id, SKU, vendor or payment method accepted.
pub const MAX_STRING_CHARS: usize = 255;
