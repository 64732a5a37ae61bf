//! The program editor: every field of the program as a labelled input,
//! named by its path (`earning.merchant_percent`, `tiers[0].name`), the
//! same path the program's validation names in its errors, so each error
//! shows beside its field. The form is turned back into the program's JSON
//! and saved through `admin::put_program`, the use case the JSON API calls,
//! guarded by the version it was read at. Lists grow or shrink in the JSON
//! form below it. Older versions are listed and readable, each with what
//! changed from the version before it, field by field.

use askama::Template;
use axum::extract::rejection::{FormRejection, PathRejection};
use axum::extract::{Form, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use serde_json::{Map, Value};

use cashback_app::admin;
use cashback_app::AppError;
use cashback_core::ids::ShopId;
use cashback_core::program::FieldError;

use crate::dashboard::{
    app_failure, html, message, nav, no_store, posted, principal, signed_in, Nav, Refused,
};
use crate::PagesState;

/// Versions listed under the editor.
const VERSIONS_LISTED: u64 = 10;

/// A leaf of the program's JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Text,
    Number,
    Flag,
    /// Null now: any JSON value, or empty for none.
    Json,
}

impl Kind {
    pub fn tag(self) -> &'static str {
        match self {
            Kind::Text => "t",
            Kind::Number => "n",
            Kind::Flag => "b",
            Kind::Json => "j",
        }
    }

    fn of(tag: &str) -> Option<Kind> {
        Some(match tag {
            "t" => Kind::Text,
            "n" => Kind::Number,
            "b" => Kind::Flag,
            "j" => Kind::Json,
            _ => return None,
        })
    }
}

/// One input of the editor.
pub struct FieldRow {
    pub path: String,
    /// The input's name: kind tag and path.
    pub name: String,
    /// A safe id for label/for and the error's id.
    pub id: String,
    pub value: String,
    pub flag: bool,
    pub number: bool,
    pub json: bool,
    pub error: Option<String>,
}

pub struct VersionRow {
    pub version: u64,
    pub url: String,
}

#[derive(Template)]
#[template(path = "program.html")]
pub struct ProgramPage {
    pub nav: Option<Nav>,
    pub shop: String,
    pub csrf: String,
    pub version: u64,
    pub fields: Vec<FieldRow>,
    pub json: String,
    /// Errors no field of the form carries (a list item added in JSON, a
    /// malformed body, a conflict).
    pub errors: Vec<String>,
    pub notice: Option<&'static str>,
    pub versions: Vec<VersionRow>,
}

/// A field that differs between two versions; None where it was not set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub path: String,
    pub before: Option<String>,
    pub after: Option<String>,
}

impl Change {
    pub fn before_shown(&self) -> &str {
        self.before.as_deref().unwrap_or("(not set)")
    }

    pub fn after_shown(&self) -> &str {
        self.after.as_deref().unwrap_or("(not set)")
    }
}

#[derive(Template)]
#[template(path = "program_version.html")]
pub struct VersionPage {
    pub nav: Option<Nav>,
    pub shop: String,
    pub version: u64,
    pub json: String,
    /// The version before it, when there is one.
    pub previous: Option<u64>,
    pub changes: Vec<Change>,
}

/// What differs between two programs' JSON, leaf by leaf (paths as the
/// editor names its fields), in the order of `after` and then what only
/// `before` had. A list that grew or shrank shows its items added or
/// removed.
pub fn diff(before: &Value, after: &Value) -> Vec<Change> {
    let shown = |kind: Kind, value: String| match kind {
        Kind::Json => "none".to_string(),
        _ => value,
    };
    let mut old = Vec::new();
    flatten(before, "", &mut old);
    let mut new = Vec::new();
    flatten(after, "", &mut new);
    let old_by_path: std::collections::HashMap<&str, (Kind, &String)> = old
        .iter()
        .map(|(path, kind, value)| (path.as_str(), (*kind, value)))
        .collect();
    let new_paths: std::collections::HashSet<&str> =
        new.iter().map(|(path, _, _)| path.as_str()).collect();
    let mut changes = Vec::new();
    for (path, kind, value) in &new {
        let before = old_by_path
            .get(path.as_str())
            .map(|(kind, value)| shown(*kind, (*value).clone()));
        let after = Some(shown(*kind, value.clone()));
        if before != after {
            changes.push(Change {
                path: path.clone(),
                before,
                after,
            });
        }
    }
    for (path, kind, value) in &old {
        if !new_paths.contains(path.as_str()) {
            changes.push(Change {
                path: path.clone(),
                before: Some(shown(*kind, value.clone())),
                after: None,
            });
        }
    }
    changes
}

/// The leaves of a JSON value, depth first, with their paths.
pub fn flatten(value: &Value, path: &str, out: &mut Vec<(String, Kind, String)>) {
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                let child_path = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                flatten(child, &child_path, out);
            }
        }
        Value::Array(items) => {
            for (i, child) in items.iter().enumerate() {
                flatten(child, &format!("{path}[{i}]"), out);
            }
        }
        Value::String(text) => out.push((path.to_string(), Kind::Text, text.clone())),
        Value::Number(number) => out.push((path.to_string(), Kind::Number, number.to_string())),
        Value::Bool(flag) => out.push((path.to_string(), Kind::Flag, flag.to_string())),
        Value::Null => out.push((path.to_string(), Kind::Json, String::new())),
    }
}

/// A path's steps: object keys and array indexes.
enum Step {
    Key(String),
    Index(usize),
}

fn steps(path: &str) -> Option<Vec<Step>> {
    let mut out = Vec::new();
    for part in path.split('.') {
        let (key, rest) = part.split_once('[').map_or((part, ""), |(k, r)| (k, r));
        if key.is_empty() {
            return None;
        }
        out.push(Step::Key(key.to_string()));
        for index in rest.split('[').filter(|s| !s.is_empty()) {
            out.push(Step::Index(index.trim_end_matches(']').parse().ok()?));
        }
    }
    Some(out)
}

/// Sets the leaf at `path`, creating objects and arrays on the way.
fn set(root: &mut Value, path: &str, leaf: Value) -> bool {
    let Some(steps) = steps(path) else {
        return false;
    };
    let mut at = root;
    for step in steps {
        at = match step {
            Step::Key(key) => {
                if !at.is_object() {
                    *at = Value::Object(Map::new());
                }
                match at.as_object_mut() {
                    Some(map) => map.entry(key).or_insert(Value::Null),
                    None => return false,
                }
            }
            Step::Index(index) => {
                if !at.is_array() {
                    *at = Value::Array(Vec::new());
                }
                let Some(items) = at.as_array_mut() else {
                    return false;
                };
                // Paths come from the form we rendered: no index beyond
                // what the program had, so a forged one cannot grow a list
                // without bound.
                if index > items.len() || index > 1000 {
                    return false;
                }
                if index == items.len() {
                    items.push(Value::Null);
                }
                &mut items[index]
            }
        };
    }
    *at = leaf;
    true
}

/// The program JSON a submitted field form describes.
pub fn unflatten(fields: &[(String, String)]) -> Result<Value, String> {
    let mut root = Value::Object(Map::new());
    for (name, raw) in fields {
        let Some(rest) = name.strip_prefix("f:") else {
            continue;
        };
        let Some((tag, path)) = rest.split_once(':') else {
            return Err(format!("the form field {name} is not ours"));
        };
        let kind = Kind::of(tag).ok_or_else(|| format!("the form field {name} is not ours"))?;
        let leaf = match kind {
            Kind::Text => Value::String(raw.clone()),
            Kind::Flag => Value::Bool(raw == "true"),
            Kind::Number => match serde_json::from_str::<serde_json::Number>(raw.trim()) {
                Ok(number) => Value::Number(number),
                // Kept as typed: the program's own check names the field.
                Err(_) => Value::String(raw.clone()),
            },
            Kind::Json if raw.trim().is_empty() => Value::Null,
            Kind::Json => serde_json::from_str(raw.trim()).unwrap_or(Value::String(raw.clone())),
        };
        if !set(&mut root, path, leaf) {
            return Err(format!("the form field {name} is not ours"));
        }
    }
    Ok(root)
}

pub(crate) fn field_id(path: &str) -> String {
    let id: String = path
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    format!("p-{id}")
}

pub(crate) fn rows(
    leaves: Vec<(String, Kind, String)>,
    errors: &mut Vec<FieldError>,
) -> Vec<FieldRow> {
    leaves
        .into_iter()
        .map(|(path, kind, value)| {
            let error = errors
                .iter()
                .position(|e| e.field == path)
                .map(|i| errors.remove(i).message);
            FieldRow {
                name: format!("f:{}:{path}", kind.tag()),
                id: field_id(&path),
                flag: kind == Kind::Flag && value == "true",
                number: kind == Kind::Number,
                json: kind == Kind::Json,
                path,
                value,
                error,
            }
        })
        .collect()
}

fn versions(shop: &ShopId, current: u64) -> Vec<VersionRow> {
    (current.saturating_sub(VERSIONS_LISTED).max(1)..=current)
        .rev()
        .map(|version| VersionRow {
            version,
            url: format!("/dashboard/shops/{shop}/program/versions/{version}"),
        })
        .collect()
}

/// The editor for `program` (what was read, or what was submitted), with
/// the errors beside their fields.
fn editor(
    nav: Nav,
    shop: &ShopId,
    version: u64,
    program: &Value,
    mut errors: Vec<FieldError>,
    other: Vec<String>,
    notice: Option<&'static str>,
) -> ProgramPage {
    let mut leaves = Vec::new();
    flatten(program, "", &mut leaves);
    let fields = rows(leaves, &mut errors);
    let mut left: Vec<String> = errors
        .into_iter()
        .map(|e| format!("{}: {}", e.field, e.message))
        .collect();
    left.extend(other);
    ProgramPage {
        shop: shop.to_string(),
        csrf: nav.csrf.clone(),
        nav: Some(nav),
        version,
        fields,
        json: serde_json::to_string_pretty(program).unwrap_or_default(),
        errors: left,
        notice,
        versions: versions(shop, version),
    }
}

pub(crate) async fn page(
    State(state): State<PagesState>,
    path: Result<Path<String>, PathRejection>,
    query: axum::extract::Query<Vec<(String, String)>>,
    headers: HeaderMap,
) -> Response {
    let now = state.ctx.now();
    let Ok(Path(raw_shop)) = path else {
        return message(
            StatusCode::NOT_FOUND,
            "Not found",
            "The address is malformed.",
        );
    };
    let (session, shop) = match signed_in(&state, &headers, &raw_shop, now) {
        Ok(found) => found,
        Err(refused) => return refused.into_response(),
    };
    let saved = query.0.iter().any(|(k, v)| k == "saved" && v == "1");
    match admin::get_program(&state.ctx, &shop).await {
        Ok(view) => {
            let value = serde_json::to_value(&view.program).unwrap_or(Value::Null);
            let notice = saved.then_some("Saved. New orders earn under this version.");
            let page = editor(
                nav(&state, &session),
                &shop,
                view.version,
                &value,
                Vec::new(),
                Vec::new(),
                notice,
            );
            html(StatusCode::OK, &page)
        }
        Err(error) => app_failure(error),
    }
}

pub(crate) async fn save(
    State(state): State<PagesState>,
    path: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    form: Result<Form<Vec<(String, String)>>, FormRejection>,
) -> Response {
    let now = state.ctx.now();
    let (Ok(Path(raw_shop)), Ok(Form(form))) = (path, form) else {
        return message(
            StatusCode::BAD_REQUEST,
            "Refused",
            "The form is incomplete.",
        );
    };
    let get = |name: &str| {
        form.iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    let (session, shop) = match posted(&state, &headers, &raw_shop, &get("csrf"), now) {
        Ok(found) => found,
        Err(refused) => return refused.into_response(),
    };
    let version = get("version").trim().parse::<u64>().ok();
    let submitted = if get("mode") == "json" {
        serde_json::from_str::<Value>(&get("json"))
            .map_err(|e| format!("The JSON is not valid: {e}"))
    } else {
        unflatten(&form)
    };
    let body = match submitted {
        Ok(value) => value,
        Err(problem) => {
            return match admin::get_program(&state.ctx, &shop).await {
                Ok(view) => {
                    let value = serde_json::to_value(&view.program).unwrap_or(Value::Null);
                    let page = editor(
                        nav(&state, &session),
                        &shop,
                        view.version,
                        &value,
                        Vec::new(),
                        vec![problem],
                        None,
                    );
                    html(StatusCode::BAD_REQUEST, &page)
                }
                Err(error) => app_failure(error),
            };
        }
    };
    match admin::put_program(
        &state.ctx,
        &shop,
        &body.to_string(),
        version,
        &principal(&session),
        now,
    )
    .await
    {
        Ok(_) => no_store(
            Redirect::to(&format!("/dashboard/shops/{shop}/program?saved=1")).into_response(),
        ),
        Err(AppError::InvalidFields(errors)) => {
            let page = editor(
                nav(&state, &session),
                &shop,
                version.unwrap_or(0),
                &body,
                errors,
                Vec::new(),
                None,
            );
            html(StatusCode::BAD_REQUEST, &page)
        }
        Err(AppError::Conflict(problem)) => {
            let page = editor(
                nav(&state, &session),
                &shop,
                version.unwrap_or(0),
                &body,
                Vec::new(),
                vec![problem],
                None,
            );
            html(StatusCode::CONFLICT, &page)
        }
        Err(error) => app_failure(error),
    }
}

pub(crate) async fn version(
    State(state): State<PagesState>,
    path: Result<Path<(String, u64)>, PathRejection>,
    headers: HeaderMap,
) -> Response {
    let now = state.ctx.now();
    let Ok(Path((raw_shop, version))) = path else {
        return message(StatusCode::NOT_FOUND, "Not found", "No such version.");
    };
    let (session, shop) = match signed_in(&state, &headers, &raw_shop, now) {
        Ok(found) => found,
        Err(refused) => return Refused::into_response(refused),
    };
    let view = match admin::get_program_version(&state.ctx, &shop, version).await {
        Ok(view) => view,
        Err(error) => return app_failure(error),
    };
    let after = serde_json::to_value(&view.program).unwrap_or(Value::Null);
    // The first version has nothing before it.
    let before = match version.checked_sub(1).filter(|v| *v > 0) {
        None => None,
        Some(previous) => match admin::get_program_version(&state.ctx, &shop, previous).await {
            Ok(before) => Some((previous, before)),
            Err(AppError::NotFound(_)) => None,
            Err(error) => return app_failure(error),
        },
    };
    let (previous, changes) = match before {
        Some((previous, before)) => (
            Some(previous),
            diff(
                &serde_json::to_value(&before.program).unwrap_or(Value::Null),
                &after,
            ),
        ),
        None => (None, Vec::new()),
    };
    html(
        StatusCode::OK,
        &VersionPage {
            nav: Some(nav(&state, &session)),
            shop: shop.to_string(),
            version,
            json: serde_json::to_string_pretty(&view.program).unwrap_or_default(),
            previous,
            changes,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_program_survives_the_round_trip_through_the_form() {
        let program = json!({
            "display_name": "Back", "currency": "USD",
            "earning": {"merchant_percent": "5", "fixed_rules": [{"amount": "2", "min_order": "50"}], "cap_per_order": null},
            "exclusions": {"sale_items": false, "gift_cards": true},
            "issuance": {"pending": {"days": 30}}, "expiry_days": 90
        });
        let mut leaves = Vec::new();
        flatten(&program, "", &mut leaves);
        let form: Vec<(String, String)> = leaves
            .iter()
            .map(|(path, kind, value)| (format!("f:{}:{path}", kind.tag()), value.clone()))
            .chain([("csrf".to_string(), "x".to_string())])
            .collect();
        assert_eq!(unflatten(&form).unwrap(), program);
    }

    #[test]
    fn a_program_with_bonuses_survives_the_round_trip_through_the_form() {
        let mut program = cashback_core::program::Program::from_json(
            r#"{"currency":"USD","bonuses":{
                "birthday":{"amount":"5.00","days_before":3},
                "anniversary":null,
                "win_back":{"after_days":90,"once_per_days":180,"reward":{"type":"extra_percent","percent":"5","valid_days":14}},
                "milestones":[{"lifetime_spend":"500"},{"lifetime_spend":"1000","amount":"10.00"}]}}"#,
        )
        .unwrap();
        program.changed_by = None;
        let json = serde_json::to_value(&program).unwrap();
        let mut leaves = Vec::new();
        flatten(&json, "", &mut leaves);
        let form: Vec<(String, String)> = leaves
            .iter()
            .map(|(path, kind, value)| (format!("f:{}:{path}", kind.tag()), value.clone()))
            .collect();
        let back = unflatten(&form).unwrap();
        let again = cashback_core::program::Program::from_json(&back.to_string()).unwrap();
        assert_eq!(again, program);
    }

    #[test]
    fn the_diff_names_each_changed_added_and_removed_field() {
        let before = json!({
            "display_name": "Back", "earning": {"merchant_percent": "5", "cap_per_order": null},
            "tiers": [{"name": "Silver"}, {"name": "Gold"}], "expiry_days": 90
        });
        let after = json!({
            "display_name": "Rewards", "earning": {"merchant_percent": "5", "cap_per_order": "20"},
            "tiers": [{"name": "Silver"}], "expiry_days": 90, "shop_url": "https://shop.test"
        });
        let changes = diff(&before, &after);
        let rows: Vec<(&str, &str, &str)> = changes
            .iter()
            .map(|c| (c.path.as_str(), c.before_shown(), c.after_shown()))
            .collect();
        assert_eq!(
            rows,
            [
                ("display_name", "Back", "Rewards"),
                ("earning.cap_per_order", "none", "20"),
                ("shop_url", "(not set)", "https://shop.test"),
                ("tiers[1].name", "Gold", "(not set)"),
            ]
        );
        assert!(diff(&after, &after).is_empty());
    }

    #[test]
    fn a_forged_path_cannot_grow_a_list_or_smuggle_a_field() {
        assert!(unflatten(&[("f:t:tiers[5000].name".into(), "x".into())]).is_err());
        assert!(unflatten(&[("f:q:display_name".into(), "x".into())]).is_err());
        assert!(unflatten(&[("f:t:.x".into(), "x".into())]).is_err());
    }
}
