//! Parked due items: `SHOP#{shop}#PARKED` / [`ParkedItem::sort_key`], the
//! record as the `doc`. Parking puts the record, then takes the account or
//! order item out of its due index with an UpdateItem conditioned on the
//! index position the job read (an item written since stays where it was
//! filed). Two calls, not one transaction: a run that dies between them
//! finds the item again and parks it again, which replaces the record.

use cashback_app::store::{DueKind, Page, ParkedItem, StoreError};
use cashback_core::ids::ShopId;

use super::attr::*;
use super::errors::from_sdk;
use super::schema::due_index;
use super::DynamoStore;

impl DynamoStore {
    pub(crate) async fn park_item(&self, parked: &ParkedItem) -> Result<(), StoreError> {
        let shop = &parked.due.shop;
        let mut item = key(crate::keys::parked_pk(shop), parked.sort_key());
        item.insert(ENTITY_TYPE.into(), s("PARKED"));
        item.insert(DOC.into(), to_doc(parked)?);
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .send()
            .await
            .map_err(|e| from_sdk("PutItem", e))?;

        let (pk, sk) = match (parked.kind, &parked.due.order, &parked.due.customer) {
            (DueKind::Release | DueKind::Ready, Some(order), _) => {
                (crate::keys::order_key(shop, order), crate::keys::ORDER_SK)
            }
            (DueKind::Reminder | DueKind::Expiry, _, Some(customer)) => (
                crate::keys::account_key(shop, customer),
                crate::keys::ACCOUNT_SK,
            ),
            // The index item names nothing to take out.
            _ => return Ok(()),
        };
        let index = due_index(parked.kind);
        let mut expr = Expr::default();
        let expression = format!("REMOVE {}, {}", expr.name(index.pk), expr.name(index.sk));
        let condition = format!(
            "{} = {}",
            expr.name(index.sk),
            expr.value(
                "filed",
                s(crate::keys::due_sort_key(parked.due.due_at, &pk))
            )
        );
        // Written (and filed elsewhere) since, or gone: the condition
        // fails and the item is left where it is.
        self.update_if(key(pk, sk), &expression, &condition, &expr)
            .await?;
        Ok(())
    }

    pub(crate) async fn list_parked_items(
        &self,
        shop: &ShopId,
        cursor: Option<String>,
        limit: u32,
    ) -> Result<Page<ParkedItem>, StoreError> {
        let pk = crate::keys::parked_pk(shop);
        let mut expr = Expr::default();
        let key_condition = format!("{} = {}", expr.name(PK), expr.value("pk", s(&pk)));
        let (items, next) = self
            .page(
                None,
                &key_condition,
                None,
                &expr,
                true,
                cursor,
                limit,
                &[PK, SK],
                (PK, &pk),
            )
            .await?;
        let items = items
            .iter()
            .map(get_doc::<ParkedItem>)
            .collect::<Result<_, _>>()?;
        Ok(Page { items, next })
    }
}
